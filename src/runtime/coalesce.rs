//! Requests that share one call: at most one call runs at a time, and every
//! request gets the answer of a call that started after it arrived.
//!
//! `/catalog/backstage` lists every Environment, Application and Service from
//! the API server, and whoever reaches the port may ask (it is not gated). One
//! list per request let a flood of requests run as many lists at once as it
//! liked, each held whole in the controller's memory while it was answered,
//! and each a full list for the API server (64 requests at once made 63 sets
//! of lists in the e2e test). Here requests that arrive while a call runs wait for the next one
//! and all share its answer, so a flood costs one call after another, however
//! many requests it sends, and nobody gets an answer older than their request
//! (a change made before asking is in the answer, as with a call of one's own).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The requests waiting for the next call, and whether a call runs.
pub struct Coalesced<T> {
    state: Mutex<Waiting<T>>,
}

struct Waiting<T> {
    running: bool,
    requests: Vec<oneshot::Sender<T>>,
}

impl<T> Default for Coalesced<T> {
    fn default() -> Self {
        Coalesced {
            state: Mutex::new(Waiting {
                running: false,
                requests: Vec::new(),
            }),
        }
    }
}

impl<T: Clone + Send + 'static> Coalesced<T> {
    /// The answer of a `call` that starts after this request arrived, shared with
    /// every request waiting for the same call. `None` when the call panicked.
    /// The calls run on a task of their own, so a request that goes away does
    /// not cancel one that others wait for.
    pub async fn get<F, Fut>(self: &Arc<Self>, call: F) -> Option<T>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (answer, wait) = oneshot::channel();
        let start = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.requests.push(answer);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.run(call).await });
        }
        wait.await.ok()
    }

    /// Calls for the waiting requests, one batch after another, until none waits.
    async fn run<F, Fut>(self: Arc<Self>, call: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = T>,
    {
        // Should a call panic, its batch's senders drop (their requests get
        // `None`) and the guard gives the turn back, so the next request
        // starts a call of its own instead of waiting forever.
        let guard = Running(&self);
        loop {
            let batch = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.requests.is_empty() {
                    state.running = false;
                    break;
                }
                std::mem::take(&mut state.requests)
            };
            let answer = call().await;
            for request in batch {
                let _ = request.send(answer.clone());
            }
        }
        std::mem::forget(guard);
    }
}

/// Frees the turn of a call that panicked (see [`Coalesced::run`]).
struct Running<'a, T>(&'a Coalesced<T>);

impl<T> Drop for Running<'_, T> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        state.running = false;
        // Those who came during the call that panicked get `None` too; the next
        // request starts a call of its own.
        state.requests.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A call that takes 50 ms and answers with the value of `data` when it
    /// started, counting its calls and how many ran at once.
    fn counted(
        data: Arc<AtomicUsize>,
        calls: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = usize> + Send>> + Send + 'static {
        move || {
            let (data, calls, running, most) =
                (data.clone(), calls.clone(), running.clone(), most.clone());
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let value = data.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                value
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_requests_runs_one_call_at_a_time_and_each_answer_is_as_new_as_its_request()
    {
        let coalesced = Arc::new(Coalesced::<usize>::default());
        let [data, calls, running, most] = std::array::from_fn(|_| Arc::new(AtomicUsize::new(0)));
        let call = || counted(data.clone(), calls.clone(), running.clone(), most.clone());

        // 200 requests at once: every one is answered, by two calls at most
        // (the one the first request started, and one for all who came during it).
        let requests: Vec<_> = (0..200)
            .map(|_| {
                let (coalesced, call) = (coalesced.clone(), call());
                tokio::spawn(async move { coalesced.get(call).await })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap(), Some(0));
        }
        let flood_calls = calls.load(Ordering::SeqCst);
        assert!((1..=2).contains(&flood_calls), "{flood_calls} calls");
        assert_eq!(most.load(Ordering::SeqCst), 1, "calls ran at once");

        // A request made after a change sees it, though a call is running when
        // it arrives: it waits for the next call rather than sharing that one.
        let (first, first_call) = (coalesced.clone(), call());
        let before = tokio::spawn(async move { first.get(first_call).await });
        for _ in 0..200 {
            if calls.load(Ordering::SeqCst) > flood_calls {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            flood_calls + 1,
            "no call started"
        );
        data.store(7, Ordering::SeqCst);
        let after = coalesced.get(call()).await;
        assert_eq!(before.await.unwrap(), Some(0));
        assert_eq!(after, Some(7));
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_call_that_panics_fails_its_requests_and_the_next_request_calls_again() {
        let coalesced = Arc::new(Coalesced::<u32>::default());
        let failed = coalesced
            .get(|| async {
                if true {
                    panic!("the list failed badly");
                }
                0
            })
            .await;
        assert_eq!(failed, None);
        assert_eq!(coalesced.get(|| async { 3 }).await, Some(3));
    }
}
