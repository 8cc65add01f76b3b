//! Text that many objects carry alike: an insight's rule, and its message
//! (most messages name no value of their Service, so every Service that fails
//! a rule has the same one). Read from the API server or made by a rule, equal
//! texts are one allocation, shared, instead of a copy in every Service the
//! stores keep (at 10,000 Services with four insights each, 7 MB of copies).
//!
//! On the wire and in the CRD schema it is a plain string.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A shared, immutable string (see the module).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedText(Arc<str>);

/// Every text shared now. A text no object holds any more is dropped from it
/// every [`SWEEP_EVERY`] texts shared, so what it keeps beyond the live texts
/// is bounded.
static SHARED: LazyLock<Mutex<Table>> = LazyLock::new(Mutex::default);

const SWEEP_EVERY: usize = 4096;

#[derive(Default)]
struct Table {
    texts: HashSet<Arc<str>>,
    since_sweep: usize,
}

impl SharedText {
    pub fn new(text: &str) -> SharedText {
        let mut table = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = table.texts.get(text) {
            return SharedText(shared.clone());
        }
        table.since_sweep += 1;
        if table.since_sweep >= SWEEP_EVERY {
            table.since_sweep = 0;
            table.texts.retain(|t| Arc::strong_count(t) > 1);
        }
        let shared: Arc<str> = Arc::from(text);
        table.texts.insert(shared.clone());
        SharedText(shared)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SharedText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedText {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> SharedText {
        SharedText::new(text)
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> SharedText {
        SharedText::new(&text)
    }
}

impl PartialEq<str> for SharedText {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedText {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Debug for SharedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SharedText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SharedText, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(SharedText::new(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_read_apart_are_one_allocation_and_a_plain_string_on_the_wire() {
        let a: SharedText =
            serde_json::from_str("\"declare spec.health for shared-text-test\"").unwrap();
        let b: SharedText =
            serde_json::from_str("\"declare spec.health for shared-text-test\"").unwrap();
        let c = SharedText::from("declare spec.health for shared-text-test".to_string());
        assert!(Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.0, &c.0));
        let other: SharedText = serde_json::from_str("\"another text, shared-text-test\"").unwrap();
        assert!(!Arc::ptr_eq(&a.0, &other.0));
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"declare spec.health for shared-text-test\""
        );
        assert_eq!(a.as_str(), "declare spec.health for shared-text-test");
        // An escaped text (not borrowed from the input) is shared as well.
        let escaped: SharedText =
            serde_json::from_str("\"a \\\"quoted\\\" text, shared-text-test\"").unwrap();
        assert_eq!(escaped, "a \"quoted\" text, shared-text-test");
    }

    #[test]
    fn a_text_no_object_holds_is_dropped_at_the_next_sweep() {
        let gone = Arc::downgrade(&SharedText::new("a text held by nobody, shared-text-test").0);
        for n in 0..SWEEP_EVERY {
            drop(SharedText::new(&format!("filler {n}, shared-text-test")));
        }
        assert!(gone.upgrade().is_none(), "swept");
        let kept = SharedText::new("a text still held, shared-text-test");
        for n in 0..SWEEP_EVERY {
            drop(SharedText::new(&format!(
                "more filler {n}, shared-text-test"
            )));
        }
        assert!(Arc::ptr_eq(
            &kept.0,
            &SharedText::new("a text still held, shared-text-test").0
        ));
    }
}
