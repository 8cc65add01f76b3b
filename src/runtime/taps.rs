//! Trigger streams cut from a reflector's own stream.
//!
//! A controller that maps another kind's changes to its objects reads that kind
//! from the shared store in its reconcile. With a second watch of the same kind
//! as the trigger, nothing orders the two: the trigger can arrive before the
//! store has the change, the reconcile then builds from the old object, and no
//! later event wakes it. (CI saw it: `paved start` wrote the Environment's
//! `status.stopped: false`; the Service controller's own Environment watch woke
//! the Service while the store still said stopped, so the Deployment stayed at
//! zero until the 10-minute resync.)
//!
//! A tap gets every object of a reflector's stream after the reflector has put
//! it in the store, so a reconcile it triggers reads at least that version. One
//! watch per kind then serves the store and every controller that follows it.
//! kube-runtime's own shared stores (`store_shared`) do the same but drop
//! deletions, which several of Paved's triggers need. After a relist, a tap
//! gets every object once the store has swapped the list in, then each object
//! that vanished while the watch was away (it made no event) marked deleted.

use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

/// `events` into the store of `writer`; each event goes on to `taps` once the
/// store has applied it, and then down the returned stream.
pub fn reflect<K, S>(
    events: S,
    writer: Writer<K>,
    mut taps: Taps<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + use<K, S>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let store = writer.as_reader();
    events.reflect(writer).map_ok(move |event| {
        taps.forward(&event, &store);
        event
    })
}

/// Whether a trigger stream gives deleted objects too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletions {
    /// As kube-runtime's `touched_objects`: an owner looks again when its child goes.
    Given,
    /// As `applied_objects`: a controller's own kind (a deleted object is
    /// reconciled through its finalizer's change, not its disappearance).
    Left,
}

/// [`reflect`], and down the returned stream each object once the store holds
/// it, for a controller's trigger: what [`Taps::forward`] releases to a tap,
/// without deletions where they are [`Deletions::Left`].
///
/// kube-runtime's `touched_objects` gives a relist's objects as they are
/// listed, while the store still holds the old list: the reconcile each
/// triggers read the old object (or found none, and was dropped), and the
/// predicate that let the trigger through lets no later copy of the same
/// generation through. A Service changed while the API server restarted was
/// not reconciled until the next resync (the fault test of an API server
/// restart caught it, one run in fifteen, when the 20 ms debounce was off; a
/// relist of thousands outlasts any debounce). And a child deleted during the
/// gap leaves no event at all: its owner never looked again.
pub fn reflect_objects<K, S>(
    events: S,
    writer: Writer<K>,
    mut taps: Taps<K>,
    deletions: Deletions,
) -> impl Stream<Item = Result<K, watcher::Error>> + use<K, S>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let (sender, mut released) = mpsc::unbounded_channel();
    taps.senders.push(Tap { sender, deletions });
    reflect(events, writer, taps).flat_map(move |event| {
        // `forward` has sent what the event released before it came here.
        let objects: Vec<Arc<K>> = std::iter::from_fn(|| released.try_recv().ok()).collect();
        let error = event.err().map(Err);
        // Cloned one at a time as the controller takes them: a relist of
        // thousands is never copied whole.
        let objects = objects
            .into_iter()
            .map(|object| Ok(Arc::unwrap_or_clone(object)));
        futures::stream::iter(error.into_iter().chain(objects))
    })
}

/// The taps of one reflector: fed by [`Taps::forward`] with each event the
/// reflector has applied to its store. What waits in a tap is the store's own
/// copy (an `Arc`), cloned only as the tap's reader takes it: a restart's
/// relist sends every object to every tap at once, and with a copy per tap
/// those queues were the largest part of a restarted controller's heap (11 of
/// 29 MB at 1,000 Services).
pub struct Taps<K> {
    senders: Vec<Tap<K>>,
    /// Indexes of the store, each told of an event before any tap gets it.
    indexes: Vec<Index<K>>,
    /// While a relist runs, the store's objects when it began: those not in
    /// the new list vanished while the watch was away, with no event of
    /// their own.
    before_relist: Vec<Arc<K>>,
}

/// One tap: where its objects go, and whether deletions do.
struct Tap<K> {
    sender: mpsc::UnboundedSender<Arc<K>>,
    deletions: Deletions,
}

/// Keeps an index of a store current (see [`Taps::index`]).
type Index<K> = Box<dyn FnMut(&watcher::Event<K>) + Send>;

impl<K> Default for Taps<K> {
    fn default() -> Self {
        Self {
            senders: Vec::new(),
            indexes: Vec::new(),
            before_relist: Vec::new(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Taps<K> {
    /// A trigger stream of every object the store takes in, in order, after the
    /// store holds it. A deleted object comes marked deleted (`deletionTimestamp`
    /// set), so a predicate on it sees a change. It ends with the reflector.
    pub fn tap(&mut self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.senders.push(Tap {
            sender,
            deletions: Deletions::Given,
        });
        received(receiver).map(|object| Ok(Arc::unwrap_or_clone(object)))
    }

    /// Keep an index of the store current: `index` sees every event once the
    /// store has applied it, and before any tap (so whatever a tap triggers
    /// finds the index as current as the store).
    pub fn index(&mut self, index: impl FnMut(&watcher::Event<K>) + Send + 'static) {
        self.indexes.push(Box::new(index));
    }

    /// `event`, which `store` has just applied, to the indexes and the taps: a
    /// change as the store now holds it, a deletion marked deleted, and a
    /// relist once the store has swapped it in: every object as the store
    /// holds it, then each that vanished during the watch's gap marked deleted.
    pub fn forward(&mut self, event: &watcher::Event<K>, store: &Store<K>) {
        for index in &mut self.indexes {
            index(event);
        }
        if self.senders.is_empty() {
            return;
        }
        match event {
            watcher::Event::Apply(object) => {
                let held = store
                    .get(&ObjectRef::from_obj(object))
                    .unwrap_or_else(|| Arc::new(object.clone()));
                self.send(held, false)
            }
            watcher::Event::Delete(object) => {
                self.send(Arc::new(marked_deleted(object.clone())), true)
            }
            // Before the reflector swaps anything in, the store is the old list.
            watcher::Event::Init => {
                if self.senders.iter().any(|t| t.deletions == Deletions::Given) {
                    self.before_relist = store.state();
                }
            }
            watcher::Event::InitApply(_) => {}
            watcher::Event::InitDone => {
                for object in store.state() {
                    self.send(object, false);
                }
                for object in std::mem::take(&mut self.before_relist) {
                    if store.get(&ObjectRef::from_obj(object.as_ref())).is_none() {
                        let object = Arc::unwrap_or_clone(object);
                        self.send(Arc::new(marked_deleted(object)), true);
                    }
                }
            }
        }
    }

    fn send(&mut self, object: Arc<K>, deletion: bool) {
        // A tap whose controller has stopped is dropped.
        self.senders.retain(|tap| {
            (deletion && tap.deletions == Deletions::Left)
                || tap.sender.send(object.clone()).is_ok()
        });
    }
}

/// A deletion must trigger even when the object had no finalizer (its last
/// state then carries no `deletionTimestamp` and the same generation).
pub fn marked_deleted<K: Resource>(mut object: K) -> K {
    object.meta_mut().deletion_timestamp.get_or_insert_with(|| {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
    });
    object
}

/// What an unbounded channel's receiver gets, as a stream that ends when every
/// sender is gone.
pub fn received<T: Send + 'static>(
    receiver: mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector::ObjectRef;

    fn config_map(name: &str, version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Drives `events` through a reflector with a tap, the way the controllers
    /// wire it, and returns what the tap gave, each with the version the store
    /// held for that object when the tap delivered it.
    async fn tapped(events: Vec<watcher::Event<ConfigMap>>) -> Vec<(ConfigMap, Option<String>)> {
        let writer = Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        let mut taps = Taps::default();
        let tap = taps.tap();
        let reflected = reflect(
            futures::stream::iter(events.into_iter().map(Ok)),
            writer,
            taps,
        );
        // The tap is read while the reflector runs, as a controller reads it.
        let mut reflected = Box::pin(reflected);
        let mut tap = Box::pin(tap);
        let mut seen = Vec::new();
        while reflected.next().await.is_some() {
            while let Some(Some(Ok(object))) = tap.next().now_or_never() {
                let held = store
                    .get(&ObjectRef::from_obj(&object))
                    .and_then(|o| o.metadata.resource_version.clone());
                seen.push((object, held));
            }
        }
        seen
    }

    #[tokio::test]
    async fn each_change_reaches_the_tap_in_order_with_the_store_holding_it() {
        let seen = tapped(vec![
            watcher::Event::Apply(config_map("a", "1")),
            watcher::Event::Apply(config_map("a", "2")),
        ])
        .await;
        let versions: Vec<_> = seen
            .iter()
            .map(|(o, held)| (o.metadata.resource_version.clone(), held.clone()))
            .collect();
        assert_eq!(
            versions,
            vec![
                (Some("1".into()), Some("1".into())),
                (Some("2".into()), Some("2".into()))
            ]
        );
    }

    #[tokio::test]
    async fn a_relist_reaches_the_taps_only_once_the_store_has_swapped_it_in() {
        let seen = tapped(vec![
            watcher::Event::Init,
            watcher::Event::InitApply(config_map("a", "1")),
            watcher::Event::InitApply(config_map("b", "1")),
            watcher::Event::InitDone,
        ])
        .await;
        assert_eq!(seen.len(), 2);
        for (object, held) in &seen {
            assert_eq!(held, &object.metadata.resource_version, "{object:?}");
        }
    }

    #[tokio::test]
    async fn a_relist_gives_the_taps_what_vanished_during_the_gap_marked_deleted() {
        let seen = tapped(vec![
            watcher::Event::Apply(config_map("a", "1")),
            watcher::Event::Apply(config_map("b", "1")),
            // The watch was away; b was deleted meanwhile.
            watcher::Event::Init,
            watcher::Event::InitApply(config_map("a", "1")),
            watcher::Event::InitDone,
        ])
        .await;
        let after_relist: Vec<_> = seen[2..]
            .iter()
            .map(|(o, held)| {
                (
                    o.metadata.name.clone().unwrap_or_default(),
                    o.metadata.deletion_timestamp.is_some(),
                    held.clone(),
                )
            })
            .collect();
        assert_eq!(
            after_relist,
            vec![
                ("a".into(), false, Some("1".into())),
                ("b".into(), true, None),
            ],
            "the relisted object as held, then the vanished one marked deleted"
        );
    }

    /// What [`reflect_objects`] gives for `events` (fed into a store holding
    /// `held` first), each with the version the store held for that object
    /// when it came down the stream.
    async fn reflected(
        held: Vec<ConfigMap>,
        events: Vec<watcher::Event<ConfigMap>>,
        deletions: Deletions,
    ) -> Vec<(String, Option<String>, Option<String>)> {
        let writer = Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        let first_list = [watcher::Event::Init]
            .into_iter()
            .chain(held.into_iter().map(watcher::Event::InitApply))
            .chain([watcher::Event::InitDone]);
        let all = first_list.chain(events).map(Ok);
        let objects = reflect_objects(
            futures::stream::iter(all),
            writer,
            Taps::default(),
            deletions,
        );
        let mut objects = Box::pin(objects);
        let mut seen = Vec::new();
        while let Some(object) = objects.next().await {
            let object = object.expect("no error");
            let in_store = store
                .get(&ObjectRef::from_obj(&object))
                .and_then(|o| o.metadata.resource_version.clone());
            seen.push((
                object.metadata.name.clone().unwrap_or_default(),
                object.metadata.resource_version.clone(),
                in_store,
            ));
        }
        seen
    }

    #[tokio::test]
    async fn a_relist_triggers_only_once_the_store_holds_it_and_what_vanished_as_deleted() {
        // a changed and c was created during the watch's gap; b was deleted.
        let relist = vec![
            watcher::Event::Init,
            watcher::Event::InitApply(config_map("a", "5")),
            watcher::Event::InitApply(config_map("c", "6")),
            watcher::Event::InitDone,
        ];
        let seen = reflected(
            vec![config_map("a", "1"), config_map("b", "1")],
            relist.clone(),
            Deletions::Given,
        )
        .await;
        let mut after_relist: Vec<_> = seen[2..].to_vec();
        after_relist.sort();
        assert_eq!(
            after_relist,
            vec![
                ("a".into(), Some("5".into()), Some("5".into())),
                ("b".into(), Some("1".into()), None),
                ("c".into(), Some("6".into()), Some("6".into())),
            ],
            "each relisted object as the store holds it, b as gone; all: {seen:?}"
        );
        // A controller's own kind: no deletion.
        let seen = reflected(
            vec![config_map("a", "1"), config_map("b", "1")],
            relist,
            Deletions::Left,
        )
        .await;
        // The store's order is a hash map's: compare as a set.
        let mut names: Vec<_> = seen[2..].iter().map(|(n, ..)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "c"], "{seen:?}");
    }

    #[tokio::test]
    async fn a_change_triggers_as_the_store_holds_it_and_a_deletion_only_where_given() {
        let events = vec![
            watcher::Event::Apply(config_map("a", "2")),
            watcher::Event::Delete(config_map("a", "3")),
        ];
        let seen = reflected(vec![], events.clone(), Deletions::Given).await;
        assert_eq!(
            seen,
            vec![
                ("a".into(), Some("2".into()), Some("2".into())),
                ("a".into(), Some("3".into()), None),
            ]
        );
        let seen = reflected(vec![], events, Deletions::Left).await;
        assert_eq!(seen, vec![("a".into(), Some("2".into()), Some("2".into()))]);
    }

    #[tokio::test]
    async fn what_waits_in_the_taps_is_the_stores_own_copy() {
        let writer = Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        let mut taps = Taps::default();
        let (first, second) = (taps.tap(), taps.tap());
        let reflected = reflect(
            futures::stream::iter(
                [
                    watcher::Event::Init,
                    watcher::Event::InitApply(config_map("a", "1")),
                    watcher::Event::InitDone,
                    watcher::Event::Apply(config_map("b", "1")),
                ]
                .map(Ok),
            ),
            writer,
            taps,
        );
        reflected.for_each(|_| async {}).await;
        for name in ["a", "b"] {
            let held = store
                .get(&ObjectRef::new(name).within("ns"))
                .expect("in the store");
            // The store's, this one, and one waiting in each of the two taps.
            assert_eq!(Arc::strong_count(&held), 4, "{name}");
        }
        let mut first = Box::pin(first);
        let taken = first.next().await.unwrap().unwrap();
        assert_eq!(taken.metadata.name.as_deref(), Some("a"));
        drop(second);
    }

    #[tokio::test]
    async fn a_deletion_reaches_the_taps_marked_deleted_once_the_store_dropped_it() {
        let seen = tapped(vec![
            watcher::Event::Apply(config_map("a", "1")),
            watcher::Event::Delete(config_map("a", "2")),
        ])
        .await;
        let (deleted, held) = &seen[1];
        assert!(deleted.metadata.deletion_timestamp.is_some());
        assert_eq!(held, &None, "the store no longer holds it");
    }

    #[tokio::test]
    async fn a_tap_whose_reader_is_gone_does_not_stop_the_others() {
        let mut taps = Taps::<ConfigMap>::default();
        drop(taps.tap());
        let mut kept = Box::pin(taps.tap());
        let store = Writer::<ConfigMap>::default().as_reader();
        taps.forward(&watcher::Event::Apply(config_map("a", "1")), &store);
        let object = kept.next().await.unwrap().unwrap();
        assert_eq!(object.metadata.name.as_deref(), Some("a"));
        assert_eq!(taps.senders.len(), 1);
    }
}
