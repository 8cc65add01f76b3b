//! Turns to reconcile, shared fairly between namespaces.
//!
//! kube-runtime's controller keeps what waits for one of its `--concurrency`
//! slots in no order, so one change in a quiet namespace waited behind a
//! thousand Services created in another (over 100 s in the bench's busy
//! phase). Paved's own queue decides instead. Every reconcile kube-runtime
//! starts first asks for a turn ([`FairQueue::try_turn`]); with none free the
//! reconcile ends at once and its object waits here, by reference. When its
//! turn comes the queue keeps a permit for it and wakes it
//! ([`FairQueue::wakes`], which the controller reads through `reconcile_on`);
//! kube-runtime starts it again and it takes the kept permit. So what waits is
//! a reference, not a started reconcile: a started one holds the object
//! kube-runtime read for it (for its error policy) and one of kube-runtime's
//! slots. (With every reconcile started and waiting inside it, the converge
//! peak at 1,000 Services was 7 MiB higher; with kube-runtime's slots bounded
//! instead, a change waited behind the backlog as before.)
//!
//! Whose turn: a queue per tenant (a Service's or Application's namespace, an
//! Environment's name), and the tenants take turns, one reconcile each. Within
//! a tenant, what the user asked for and Paved has not acted on yet (a new
//! generation, a deletion: urgent) goes first, then the rest (a child's status
//! moved, a resync), each in order of arrival: a namespace's own resyncs never
//! hold up a change in it. And a tenant with no urgent waiter that gets one
//! takes the next turn (as a sparse flow does in FQ-CoDel): a single change is
//! not held for a round of busy tenants, while a tenant with a backlog of
//! changes (a thousand Services created) takes its turns in the round like any
//! other.
//!
//! ```text
//! try_turn(object, urgent)
//!   a permit was kept for it        → Now
//!   a permit free, nobody waiting   → Now
//!   otherwise                       → Queued: it waits once (asked again, it
//!                                     keeps its place; urgent moves it up to
//!                                     the tenant's urgent waiters), and the
//!                                     reconcile ends
//! a permit comes back (dropped)     → kept for the next tenant's first waiter,
//!                                     urgent first (tenants in turn), which is
//!                                     woken; or back to the pool
//! a kept permit not taken in KEPT,
//!   or released (its object gone)   → handed on
//! close() (shutdown)                → every later turn is Closed
//! ```
//!
//! `paved_reconciles_queued{kind}` counts the waiters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use super::metrics::Metrics;

/// How long a permit is kept for a woken object before it goes to the next
/// waiter. Taking it takes a few milliseconds (kube-runtime's debounce, a
/// slot); only an object gone meanwhile never takes it.
const KEPT: Duration = Duration::from_secs(10);

/// The objects a queue can hold: a kind with no dynamic type.
pub trait Queued: Resource<DynamicType = ()> + Send + Sync + 'static {}
impl<K: Resource<DynamicType = ()> + Send + Sync + 'static> Queued for K {}

/// A right to run one reconcile; handed on when dropped.
pub struct Permit<K: Queued> {
    queue: Option<Arc<FairQueue<K>>>,
}

impl<K: Queued> Drop for Permit<K> {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.hand_on();
        }
    }
}

/// What [`FairQueue::try_turn`] answers.
pub enum Turn<K: Queued> {
    /// Run now, holding the permit until the reconcile ends.
    Now(Permit<K>),
    /// Wait: the object is queued, and woken when its turn comes.
    Queued,
    /// Shutting down: run nothing.
    Closed,
}

pub struct FairQueue<K: Queued> {
    /// 0: no limit (every turn at once), as `--concurrency 0` always meant.
    permits: usize,
    metrics: Arc<Metrics>,
    state: Mutex<State<K>>,
    wake: mpsc::UnboundedSender<ObjectRef<K>>,
    woken: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<K>>>>,
}

struct State<K: Queued> {
    free: usize,
    closed: bool,
    /// Tenants with waiters, in the order they take their next turn.
    ring: VecDeque<String>,
    waiting: HashMap<String, Waiters<K>>,
    queued: usize,
    /// Permits kept for woken objects until they take them, each with the
    /// number of its grant (a later grant to the same object is another).
    kept: HashMap<ObjectRef<K>, u64>,
    grants: u64,
}

/// Whose turns an object waits in: its namespace; an object with none (an
/// Environment) its own name.
fn tenant<K: Queued>(object: &ObjectRef<K>) -> &str {
    object.namespace.as_deref().unwrap_or(&object.name)
}

impl<K: Queued> State<K> {
    /// `tenant` takes the next turn.
    fn first_in_round(&mut self, tenant: &str) {
        if let Some(at) = self.ring.iter().position(|t| t == tenant) {
            self.ring.remove(at);
        }
        self.ring.push_front(tenant.to_string());
    }

    /// Queues `object` once; an urgent ask moves a waiting one up.
    fn queue(&mut self, object: &ObjectRef<K>, urgent: bool) {
        let tenant = tenant(object);
        let idle = !self.waiting.contains_key(tenant);
        let waiters = self.waiting.entry(tenant.to_string()).or_default();
        let sparse = urgent && waiters.urgent.is_empty();
        if waiters.all.contains(object) {
            if !urgent {
                return;
            }
            let Some(at) = waiters.other.iter().position(|o| o == object) else {
                return; // already urgent
            };
            waiters.other.remove(at);
        } else {
            waiters.all.insert(object.clone());
            self.queued += 1;
        }
        if urgent {
            waiters.urgent.push_back(object.clone());
        } else {
            waiters.other.push_back(object.clone());
        }
        if sparse {
            self.first_in_round(tenant);
        } else if idle {
            self.ring.push_back(tenant.to_string());
        }
    }

    /// The next waiter, tenants in turn.
    fn next(&mut self) -> Option<ObjectRef<K>> {
        while let Some(tenant) = self.ring.pop_front() {
            let Some(waiters) = self.waiting.get_mut(&tenant) else {
                continue;
            };
            let next = waiters.pop();
            if waiters.urgent.is_empty() && waiters.other.is_empty() {
                self.waiting.remove(&tenant);
            } else {
                self.ring.push_back(tenant);
            }
            if let Some(next) = next {
                self.queued -= 1;
                return Some(next);
            }
        }
        None
    }
}

/// One tenant's waiters: the urgent ones, then the rest.
struct Waiters<K: Queued> {
    urgent: VecDeque<ObjectRef<K>>,
    other: VecDeque<ObjectRef<K>>,
    all: HashSet<ObjectRef<K>>,
}

impl<K: Queued> Default for Waiters<K> {
    fn default() -> Self {
        Waiters {
            urgent: VecDeque::new(),
            other: VecDeque::new(),
            all: HashSet::new(),
        }
    }
}

impl<K: Queued> Waiters<K> {
    fn pop(&mut self) -> Option<ObjectRef<K>> {
        let next = self.urgent.pop_front().or_else(|| self.other.pop_front())?;
        self.all.remove(&next);
        Some(next)
    }
}

impl<K: Queued> FairQueue<K> {
    pub fn new(permits: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        let (wake, woken) = mpsc::unbounded_channel();
        Arc::new(FairQueue {
            permits,
            metrics,
            state: Mutex::new(State {
                free: permits,
                closed: false,
                ring: VecDeque::new(),
                waiting: HashMap::new(),
                queued: 0,
                kept: HashMap::new(),
                grants: 0,
            }),
            wake,
            woken: Mutex::new(Some(woken)),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_queued(&self, queued: usize) {
        self.metrics.set_queued(&K::kind(&()), queued);
    }

    /// A turn for `object` now, or its place in the queue (ahead of its
    /// tenant's other waiters when `urgent`).
    pub fn try_turn(self: &Arc<Self>, object: &ObjectRef<K>, urgent: bool) -> Turn<K> {
        let mut state = self.state();
        if state.closed {
            return Turn::Closed;
        }
        if self.permits == 0 {
            return Turn::Now(Permit { queue: None });
        }
        let now = || {
            Turn::Now(Permit {
                queue: Some(self.clone()),
            })
        };
        if state.kept.remove(object).is_some() {
            return now();
        }
        if state.free > 0 && state.queued == 0 {
            state.free -= 1;
            return now();
        }
        state.queue(object, urgent);
        self.set_queued(state.queued);
        Turn::Queued
    }

    /// A permit came back: kept for the next waiter, which is woken, or back
    /// to the pool.
    fn hand_on(self: &Arc<Self>) {
        let mut state = self.state();
        if !state.closed {
            let mut granted = None;
            while let Some(next) = state.next() {
                // Nobody reads the wakes (the controller is gone): no turn to give.
                if self.wake.send(next.clone()).is_ok() {
                    granted = Some(next);
                    break;
                }
            }
            self.set_queued(state.queued);
            if let Some(next) = granted {
                state.grants += 1;
                let grant = state.grants;
                state.kept.insert(next.clone(), grant);
                self.expire_later(next, grant);
                return;
            }
        }
        state.free += 1;
    }

    /// Hands the permit kept by `grant` on if it is still not taken in [`KEPT`].
    fn expire_later(self: &Arc<Self>, object: ObjectRef<K>, grant: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let queue = Arc::downgrade(self);
        runtime.spawn(async move {
            tokio::time::sleep(KEPT).await;
            if let Some(queue) = queue.upgrade() {
                queue.release_grant(&object, Some(grant));
            }
        });
    }

    /// The permit kept for `object` (by `grant`, or any) goes on to the next
    /// waiter.
    fn release_grant(self: &Arc<Self>, object: &ObjectRef<K>, grant: Option<u64>) {
        let mut state = self.state();
        match state.kept.get(object) {
            Some(kept) if grant.is_none_or(|grant| grant == *kept) => {
                state.kept.remove(object);
            }
            _ => return,
        }
        drop(state);
        self.hand_on();
    }

    /// The objects whose turn came, for the controller's `reconcile_on`
    /// (once; later calls get an empty stream). `exists` says whether an
    /// object is still there: the permit kept for one that is gone goes on at
    /// once, and an object that took its permit already (started by one of
    /// its own events meanwhile) is not started again.
    pub fn wakes(
        self: &Arc<Self>,
        exists: impl Fn(&ObjectRef<K>) -> bool + Send + 'static,
    ) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
        let woken = self.woken.lock().unwrap_or_else(|e| e.into_inner()).take();
        let queue = self.clone();
        // No receiver (taken before): an empty stream.
        futures::stream::iter(woken)
            .flat_map(super::taps::received)
            .filter_map(move |object| {
                let kept = queue.state().kept.contains_key(&object);
                let wake = if !kept {
                    None
                } else if exists(&object) {
                    Some(object)
                } else {
                    queue.release_grant(&object, None);
                    None
                };
                futures::future::ready(wake)
            })
    }

    /// Shutdown: every later turn is [`Turn::Closed`], and nothing waits.
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.ring.clear();
        state.waiting.clear();
        state.kept.clear();
        state.queued = 0;
        self.set_queued(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    type Queue = Arc<FairQueue<ConfigMap>>;

    fn queue(permits: usize) -> Queue {
        FairQueue::new(permits, Arc::new(Metrics::default()))
    }

    fn object(tenant: &str, name: &str) -> ObjectRef<ConfigMap> {
        ObjectRef::new(name).within(tenant)
    }

    fn now(turn: Turn<ConfigMap>) -> Permit<ConfigMap> {
        match turn {
            Turn::Now(permit) => permit,
            Turn::Queued => panic!("queued, not a turn"),
            Turn::Closed => panic!("closed, not a turn"),
        }
    }

    fn queued(turn: Turn<ConfigMap>) -> bool {
        matches!(turn, Turn::Queued)
    }

    /// Queues `tenants` in this order behind a held permit (a tenant ending
    /// in `!` asks for an urgent turn; each is an object of its own), then
    /// does what kube-runtime does: starts each woken object again, which
    /// takes its kept permit. Returns the tenants in the order of their turns.
    async fn order_of_turns(tenants: &[&str]) -> Vec<String> {
        let queue = queue(1);
        let mut wakes = Box::pin(queue.wakes(|_| true));
        let held = now(queue.try_turn(&object("busy", "held"), false));
        for (n, tenant) in tenants.iter().enumerate() {
            let urgent = tenant.ends_with('!');
            let waiter = object(tenant.trim_end_matches('!'), &format!("{n}{tenant}"));
            assert!(queued(queue.try_turn(&waiter, urgent)));
        }
        drop(held);
        let mut order = Vec::new();
        for _ in tenants {
            let woken = wakes.next().await.expect("a wake");
            let permit = now(queue.try_turn(&woken, woken.name.ends_with('!')));
            order.push(woken.name.trim_start_matches(char::is_numeric).to_string());
            drop(permit);
        }
        assert_eq!(queue.state().free, 1, "the permit came back");
        order
    }

    #[tokio::test]
    async fn tenants_take_turns_and_each_keeps_its_order_of_arrival() {
        assert_eq!(
            order_of_turns(&["a", "a", "a", "b", "c", "a", "b"]).await,
            ["a", "b", "c", "a", "b", "a", "a"]
        );
    }

    #[tokio::test]
    async fn within_a_tenant_what_paved_has_not_acted_on_goes_first() {
        // b's first urgent waiter puts b at the head; a's urgent ones go first in a.
        assert_eq!(
            order_of_turns(&["a", "a", "b", "a!", "b", "a!", "b!"]).await,
            ["b!", "a!", "b", "a!", "b", "a", "a"]
        );
    }

    #[tokio::test]
    async fn a_change_waits_for_no_resync_of_its_own_namespace_nor_for_busy_ones() {
        // Nine tenants with a backlog of changes (Services being created), and
        // one whose own resyncs queue: its one change takes the next turn.
        let mut tenants = Vec::new();
        for _ in 0..20 {
            tenants.extend([
                "b1!", "b2!", "b3!", "b4!", "b5!", "b6!", "b7!", "b8!", "b9!",
            ]);
            tenants.push("quiet");
        }
        tenants.push("quiet!");
        let order = order_of_turns(&tenants).await;
        assert_eq!(
            order.iter().position(|t| t == "quiet!"),
            Some(0),
            "{order:?}"
        );
    }

    #[tokio::test]
    async fn a_tenant_with_a_backlog_of_changes_takes_its_turns_in_the_round() {
        let order = order_of_turns(&["a!", "a!", "a!", "b!", "b!", "c"]).await;
        assert_eq!(order, ["b!", "a!", "c", "b!", "a!", "a!"]);
    }

    #[tokio::test]
    async fn one_change_in_a_quiet_namespace_waits_one_turn_not_behind_a_busy_one() {
        let mut tenants = vec!["busy"; 100];
        tenants.push("quiet");
        let order = order_of_turns(&tenants).await;
        assert_eq!(
            order.iter().position(|t| t == "quiet"),
            Some(1),
            "{order:?}"
        );
    }

    #[tokio::test]
    async fn an_object_waits_once_and_moves_up_when_the_user_changes_it() {
        let queue = queue(1);
        let mut wakes = Box::pin(queue.wakes(|_| true));
        let held = now(queue.try_turn(&object("a", "held"), false));
        for name in ["resync-1", "resync-2", "changed", "resync-3"] {
            assert!(queued(queue.try_turn(&object("a", name), false)));
        }
        // Asked again (another event of the same object): the same place.
        assert!(queued(queue.try_turn(&object("a", "resync-1"), false)));
        assert_eq!(queue.state().queued, 4);
        // The user changed it: urgent now.
        assert!(queued(queue.try_turn(&object("a", "changed"), true)));
        assert_eq!(queue.state().queued, 4);
        drop(held);
        let mut order = Vec::new();
        for _ in 0..4 {
            let woken = wakes.next().await.expect("a wake");
            drop(now(queue.try_turn(&woken, false)));
            order.push(woken.name);
        }
        assert_eq!(order, ["changed", "resync-1", "resync-2", "resync-3"]);
    }

    #[tokio::test]
    async fn no_more_run_at_once_than_the_permits_and_every_object_gets_its_turn() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let queue = queue(3);
        let mut wakes = Box::pin(queue.wakes(|_| true));
        let (running, most, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let run = |permit: Permit<ConfigMap>| {
            let (running, most, done) = (running.clone(), most.clone(), done.clone());
            tokio::spawn(async move {
                let now = running.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                running.fetch_sub(1, SeqCst);
                done.fetch_add(1, SeqCst);
                drop(permit);
            })
        };
        let mut tasks = Vec::new();
        for n in 0..40 {
            let waiter = object(&format!("ns-{}", n % 4), &n.to_string());
            if let Turn::Now(permit) = queue.try_turn(&waiter, n % 3 == 0) {
                tasks.push(run(permit));
            }
        }
        assert_eq!(tasks.len(), 3, "three run at once, the rest wait");
        while tasks.len() < 40 {
            let woken = tokio::time::timeout(Duration::from_secs(5), wakes.next())
                .await
                .expect("the next one is woken")
                .expect("a wake");
            tasks.push(run(now(queue.try_turn(&woken, false))));
        }
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(done.load(SeqCst), 40);
        assert_eq!(most.load(SeqCst), 3);
        assert_eq!(queue.state().free, 3, "every permit came back");
    }

    #[tokio::test]
    async fn a_turn_for_an_object_gone_goes_on_to_the_next() {
        let queue = queue(1);
        let mut wakes = Box::pin(queue.wakes(|object| object.name != "gone"));
        let held = now(queue.try_turn(&object("a", "held"), false));
        assert!(queued(queue.try_turn(&object("a", "gone"), true)));
        assert!(queued(queue.try_turn(&object("b", "next"), false)));
        drop(held);
        let woken = wakes.next().await.expect("a wake");
        assert_eq!(woken.name, "next");
        drop(now(queue.try_turn(&woken, false)));
        assert_eq!(queue.state().free, 1);
        assert!(queue.state().kept.is_empty());
    }

    #[tokio::test]
    async fn an_object_that_took_its_turn_meanwhile_is_not_woken_again() {
        let queue = queue(1);
        let mut wakes = Box::pin(queue.wakes(|_| true));
        let held = now(queue.try_turn(&object("a", "held"), false));
        assert!(queued(queue.try_turn(&object("a", "x"), false)));
        assert!(queued(queue.try_turn(&object("b", "y"), false)));
        drop(held);
        // x is kept a permit and woken; one of its own events starts it first.
        drop(now(queue.try_turn(&object("a", "x"), false)));
        let woken = wakes.next().await.expect("a wake");
        assert_eq!(woken.name, "y", "x's wake is dropped: it had its turn");
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_permit_nobody_takes_goes_on_after_a_while() {
        let queue = queue(1);
        let mut wakes = Box::pin(queue.wakes(|_| true));
        let held = now(queue.try_turn(&object("a", "held"), false));
        assert!(queued(queue.try_turn(&object("a", "never-comes"), false)));
        assert!(queued(queue.try_turn(&object("b", "next"), false)));
        drop(held);
        assert_eq!(wakes.next().await.expect("a wake").name, "never-comes");
        // It is never started (kube-runtime found no object, say).
        tokio::time::sleep(KEPT + Duration::from_millis(1)).await;
        let woken = wakes.next().await.expect("a wake");
        assert_eq!(woken.name, "next");
        // Too late: never-comes waits again, behind what was granted meanwhile.
        assert!(queued(queue.try_turn(&object("a", "never-comes"), false)));
        drop(now(queue.try_turn(&woken, false)));
        assert_eq!(wakes.next().await.expect("a wake").name, "never-comes");
    }

    #[tokio::test]
    async fn the_depth_is_a_metric() {
        let metrics = Arc::new(Metrics::default());
        let queue: Queue = FairQueue::new(1, metrics.clone());
        let mut wakes = Box::pin(queue.wakes(|_| true));
        let held = now(queue.try_turn(&object("a", "held"), false));
        assert!(queued(queue.try_turn(&object("a", "waits"), false)));
        assert!(
            metrics
                .encode()
                .contains("paved_reconciles_queued{kind=\"ConfigMap\"} 1")
        );
        drop(held);
        let woken = wakes.next().await.expect("a wake");
        assert!(
            metrics
                .encode()
                .contains("paved_reconciles_queued{kind=\"ConfigMap\"} 0")
        );
        drop(now(queue.try_turn(&woken, false)));
    }

    #[tokio::test]
    async fn once_closed_nothing_runs_and_nothing_waits() {
        let queue = queue(1);
        let _held = now(queue.try_turn(&object("a", "held"), false));
        assert!(queued(queue.try_turn(&object("b", "waits"), false)));
        queue.close();
        assert!(matches!(
            queue.try_turn(&object("b", "waits"), true),
            Turn::Closed
        ));
        assert_eq!(queue.state().queued, 0);
    }

    #[tokio::test]
    async fn without_a_limit_every_turn_comes_at_once() {
        let queue = queue(0);
        let permits: Vec<_> = (0..100)
            .map(|n| now(queue.try_turn(&object("a", &n.to_string()), false)))
            .collect();
        assert_eq!(permits.len(), 100);
    }
}
