//! A watcher whose lists come whole from the API server's watch cache and are
//! decoded as they arrive.
//!
//! kube-runtime's watcher lists in pages of 500, and kube leaves out
//! `resourceVersion=0` whenever a page size is set, so every page was a read
//! of etcd: at 10,000 Services a restart made 20 requests for the Deployments
//! and 20 for the Services, one after another, the next page asked for only
//! once the last one's objects were through the controllers (the restarted
//! controller was ready after 7-10 s, the API server spending about 10 s of
//! CPU on it). Without a page size the list is one request, served from the
//! watch cache (`resourceVersion=0`, as client-go's informers list), but kube
//! holds a response whole, twice (its bytes, and a copy as text): 330 MiB at
//! that size against 140. So the list is read here as a stream: the body is
//! decoded on a blocking thread as it arrives, each object handed on through
//! a short channel, and the response's `resourceVersion` (which the API server
//! may write after the items) read on the way. Then it watches from there as
//! kube's watcher does, and lists again after 410 Gone.
//!
//! The stream speaks kube-runtime's `watcher::Event`s and errors, so
//! everything downstream (backoff, reflectors, controllers) is kube-runtime's.

use std::fmt;

use futures::{Stream, StreamExt};
use kube::api::{Api, ListParams, VersionMatch, WatchEvent, WatchParams};
use kube::core::Request;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use tokio::sync::mpsc;
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Objects decoded ahead of the consumer: enough to keep the decoding thread
/// busy, few enough that a list is never held whole.
const AHEAD: usize = 64;

/// How long a watch request lasts before it is made again (kube's default).
const WATCH_SECONDS: u32 = 290;

/// What the decoding thread hands on.
enum Listed<K> {
    Object(K),
    /// The list is through, at this resourceVersion.
    End(String),
    Failed(kube::Error),
}

enum State<K> {
    /// Nothing listed yet, or the place lost: list.
    Empty,
    Listing(mpsc::Receiver<Listed<K>>),
    /// Listed or watched up to this resourceVersion: watch from it.
    Listed(String),
    Watching {
        version: String,
        events: futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>,
    },
}

/// Lists and watches what `api` and `config` (its label and field selectors)
/// select, as kube-runtime's `watcher` does; see the module.
pub fn list_watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + 'static,
{
    futures::stream::unfold(State::Empty, move |state| {
        let (api, config) = (api.clone(), config.clone());
        async move {
            let mut state = state;
            loop {
                let (event, next) = step(&api, &config, state).await;
                match event {
                    Some(event) => return Some((event, next)),
                    None => state = next,
                }
            }
        }
    })
}

async fn step<K>(
    api: &Api<K>,
    config: &watcher::Config,
    state: State<K>,
) -> (Option<Result<Event<K>, watcher::Error>>, State<K>)
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + 'static,
{
    match state {
        State::Empty => match start_list(api, config).await {
            Ok(objects) => (Some(Ok(Event::Init)), State::Listing(objects)),
            Err(error) => (
                Some(Err(watcher::Error::InitialListFailed(error))),
                State::Empty,
            ),
        },
        State::Listing(mut objects) => match objects.recv().await {
            Some(Listed::Object(object)) => {
                (Some(Ok(Event::InitApply(object))), State::Listing(objects))
            }
            Some(Listed::End(version)) => (Some(Ok(Event::InitDone)), State::Listed(version)),
            Some(Listed::Failed(error)) => (
                Some(Err(watcher::Error::InitialListFailed(error))),
                State::Empty,
            ),
            // The decoding thread panicked.
            None => (
                Some(Err(watcher::Error::InitialListFailed(
                    kube::Error::Service("the list's decoding stopped".into()),
                ))),
                State::Empty,
            ),
        },
        State::Listed(version) => {
            let mut params = WatchParams::default().timeout(WATCH_SECONDS);
            if let Some(labels) = &config.label_selector {
                params = params.labels(labels);
            }
            if let Some(fields) = &config.field_selector {
                params = params.fields(fields);
            }
            match api.watch(&params, &version).await {
                Ok(events) => (
                    None,
                    State::Watching {
                        version,
                        events: events.boxed(),
                    },
                ),
                Err(error) => (
                    Some(Err(watcher::Error::WatchStartFailed(error))),
                    State::Listed(version),
                ),
            }
        }
        State::Watching {
            mut version,
            mut events,
        } => match events.next().await {
            Some(Ok(WatchEvent::Added(object) | WatchEvent::Modified(object))) => {
                if let Some(at) = object.meta().resource_version.clone() {
                    version = at;
                }
                (
                    Some(Ok(Event::Apply(object))),
                    State::Watching { version, events },
                )
            }
            Some(Ok(WatchEvent::Deleted(object))) => {
                if let Some(at) = object.meta().resource_version.clone() {
                    version = at;
                }
                (
                    Some(Ok(Event::Delete(object))),
                    State::Watching { version, events },
                )
            }
            Some(Ok(WatchEvent::Bookmark(bookmark))) => (
                None,
                State::Watching {
                    version: bookmark.metadata.resource_version,
                    events,
                },
            ),
            // 410 Gone: the place is lost, list again.
            Some(Ok(WatchEvent::Error(error))) if error.code == 410 => {
                (Some(Err(watcher::Error::WatchError(error))), State::Empty)
            }
            Some(Ok(WatchEvent::Error(error))) => (
                Some(Err(watcher::Error::WatchError(error))),
                State::Listed(version),
            ),
            Some(Err(error)) => (
                Some(Err(watcher::Error::WatchFailed(error))),
                State::Listed(version),
            ),
            // The request's time is up: watch again from where it was.
            None => (None, State::Listed(version)),
        },
    }
}

/// Starts the list (the response's head read here), and a blocking thread that
/// decodes its body into the returned channel.
async fn start_list<K>(
    api: &Api<K>,
    config: &watcher::Config,
) -> kube::Result<mpsc::Receiver<Listed<K>>>
where
    K: Resource + Clone + DeserializeOwned + Send + 'static,
{
    let mut params = ListParams {
        resource_version: Some("0".into()),
        version_match: Some(VersionMatch::NotOlderThan),
        ..Default::default()
    };
    params.label_selector = config.label_selector.clone();
    params.field_selector = config.field_selector.clone();
    let request = Request::new(api.resource_url())
        .list(&params)
        .map_err(kube::Error::BuildRequest)?;
    let body = body_reader(&api.clone().into_client(), request).await?;
    let (sender, receiver) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut decoder = serde_json::Deserializer::from_reader(body);
        let last = match (ListSeed { objects: &sender }).deserialize(&mut decoder) {
            Ok(Some(version)) if !version.is_empty() => Listed::End(version),
            Ok(_) => Listed::Failed(kube::Error::Service(
                "the list has no resourceVersion".into(),
            )),
            Err(error) => Listed::Failed(kube::Error::SerdeError(error)),
        };
        // The consumer may have gone (shutting down): nothing to tell then.
        let _ = sender.blocking_send(last);
    });
    Ok(receiver)
}

/// The body of `request`'s response as a blocking reader, read as it
/// arrives: for a blocking thread to decode (kube's `Client::request` holds a
/// body whole, twice or more).
pub async fn body_reader(
    client: &Client,
    request: http::Request<Vec<u8>>,
) -> kube::Result<impl std::io::Read + Send + 'static> {
    let body = client.request_stream(request).await?;
    Ok(std::io::BufReader::new(tokio_util::io::SyncIoBridge::new(
        body.compat(),
    )))
}

/// A list object: hands each of its `items` on as it is decoded, skips what
/// else it holds, and gives back its `metadata.resourceVersion`.
struct ListSeed<'a, K> {
    objects: &'a mpsc::Sender<Listed<K>>,
}

impl<'de, K: DeserializeOwned> DeserializeSeed<'de> for ListSeed<'_, K> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, K: DeserializeOwned> de::Visitor<'de> for ListSeed<'_, K> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        #[derive(serde::Deserialize)]
        struct ListMeta {
            #[serde(rename = "resourceVersion")]
            resource_version: Option<String>,
        }
        let mut version = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "items" => map.next_value_seed(ItemsSeed {
                    objects: self.objects,
                })?,
                "metadata" => version = map.next_value::<ListMeta>()?.resource_version,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(version)
    }
}

struct ItemsSeed<'a, K> {
    objects: &'a mpsc::Sender<Listed<K>>,
}

impl<'de, K: DeserializeOwned> DeserializeSeed<'de> for ItemsSeed<'_, K> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, K: DeserializeOwned> de::Visitor<'de> for ItemsSeed<'_, K> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list's items")
    }

    /// `"items": null`: an empty list.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while let Some(object) = items.next_element::<K>()? {
            if self.objects.blocking_send(Listed::Object(object)).is_err() {
                return Err(de::Error::custom("the watch was dropped"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    /// Decodes `text` as a list through [`ListSeed`] on a blocking thread.
    async fn decode(text: &'static str) -> (Vec<ConfigMap>, Result<Option<String>, String>) {
        let (sender, mut receiver) = mpsc::channel(2);
        let thread = tokio::task::spawn_blocking(move || {
            let mut decoder = serde_json::Deserializer::from_reader(text.as_bytes());
            (ListSeed { objects: &sender })
                .deserialize(&mut decoder)
                .map_err(|e| e.to_string())
        });
        let mut objects = Vec::new();
        while let Some(Listed::Object(object)) = receiver.recv().await {
            objects.push(object);
        }
        (objects, thread.await.unwrap())
    }

    #[tokio::test]
    async fn a_list_is_handed_on_object_by_object_with_its_version_wherever_it_comes() {
        // Typed lists carry metadata first; the API server writes a custom
        // resource's list with its keys sorted, metadata last.
        let (objects, version) = decode(
            r#"{"apiVersion":"v1","items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}},{"metadata":{"name":"c"}}],"kind":"ConfigMapList","metadata":{"continue":"","resourceVersion":"42"}}"#,
        )
        .await;
        let names: Vec<_> = objects
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(version, Ok(Some("42".into())));

        let (objects, version) = decode(
            r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":null}"#,
        )
        .await;
        assert!(objects.is_empty());
        assert_eq!(version, Ok(Some("7".into())));
    }

    #[tokio::test]
    async fn a_broken_list_is_an_error_not_a_short_list() {
        let (objects, version) = decode(r#"{"metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"a"}},{"metadata":"#).await;
        assert_eq!(objects.len(), 1, "what came before the break is handed on");
        assert!(version.is_err(), "{version:?}");
    }
}
