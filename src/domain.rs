//! Who owns a domain: the checks the CRD schema cannot make on
//! `Environment.spec.domain`, as pure functions over the known Environments.
//!
//! - A domain is never a public suffix (`com`, `co.uk`, `github.io`), judged by
//!   the Public Suffix List compiled into the `psl` crate (no network), nor a
//!   single label (the schema refuses those too; `paved render` has no schema).
//! - A domain belongs to one Environment. Environments are taken in claim
//!   order: those that hold their current domain already, by when they got
//!   it (`status.domain.since`), then the others by creationTimestamp, then
//!   name. Each holds its domain unless an earlier holder's domain equals it,
//!   lies under it or above it.
//!   The upper of two Environments may leave a subtree to others with
//!   `spec.delegatedDomains`; its own Services then cannot use hosts there.
//!
//! An Environment that does not hold its domain is Stalled and its Services
//! claim no host, so neither an Environment created later nor an older one that
//! moves its `spec.domain` can capture the hosts of one that holds them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::Environment;
use crate::error::{Error, Result};

/// Whether `domain` (lowercase, no trailing dot) is a public suffix or a single label.
pub fn is_public_suffix(domain: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    if !domain.contains('.') {
        return true;
    }
    psl::suffix(domain.as_bytes())
        .is_some_and(|s| s.is_known() && s.as_bytes() == domain.as_bytes())
}

/// `inner` equals `outer` or is a name under it.
fn within(inner: &str, outer: &str) -> bool {
    inner == outer
        || inner
            .strip_suffix(outer)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The upper Environment leaves `lower` to someone else (`spec.delegatedDomains`).
fn delegates(upper: &Environment, lower: &str) -> bool {
    upper
        .spec
        .delegated_domains
        .iter()
        .any(|delegated| within(lower, delegated) && delegated != &upper.spec.domain)
}

/// Two Environments' domains overlap: equal, or one under the other without delegation.
fn overlap(a: &Environment, b: &Environment) -> bool {
    let (da, db) = (a.spec.domain.as_str(), b.spec.domain.as_str());
    if da == db {
        return true;
    }
    if within(da, db) {
        return !delegates(b, da);
    }
    if within(db, da) {
        return !delegates(a, db);
    }
    false
}

/// The order of claims: Environments that already hold their current domain
/// first, by the time they got it (`status.domain.since`); then the others (new,
/// or whose `spec.domain` changed), by creationTimestamp; then by name.
fn claim_order(e: &Environment) -> (bool, Option<&str>, Option<&Time>, &str) {
    let held_since = e
        .status
        .as_ref()
        .and_then(|s| s.domain.as_ref())
        .filter(|claim| claim.name == e.spec.domain)
        .map(|claim| claim.since.as_str());
    (
        held_since.is_none(),
        held_since,
        e.metadata.creation_timestamp.as_ref(),
        e.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// `Ok` when `environment` holds its domain among `environments` (which may
/// include it); otherwise the problem, naming the Environment that holds it.
pub fn check_domain<'a>(
    environments: impl IntoIterator<Item = &'a Environment>,
    environment: &Environment,
) -> Result<()> {
    let domain = &environment.spec.domain;
    if is_public_suffix(domain) {
        return Err(Error::PublicSuffixDomain {
            domain: domain.clone(),
        });
    }
    let mine = claim_order(environment);
    let mut earlier: Vec<&Environment> = environments
        .into_iter()
        .filter(|e| e.metadata.deletion_timestamp.is_none())
        .filter(|e| claim_order(e) < mine)
        .filter(|e| !is_public_suffix(&e.spec.domain))
        .collect();
    earlier.sort_by(|a, b| claim_order(a).cmp(&claim_order(b)));
    // Only Environments that hold their own domain hold anything.
    let mut holders: Vec<&Environment> = Vec::new();
    for candidate in earlier {
        if !holders.iter().any(|h| overlap(h, candidate)) {
            holders.push(candidate);
        }
    }
    match holders.into_iter().find(|h| overlap(h, environment)) {
        Some(holder) => Err(Error::DomainConflict {
            domain: domain.clone(),
            holder: holder.metadata.name.clone().unwrap_or_default(),
            holder_domain: holder.spec.domain.clone(),
        }),
        None => Ok(()),
    }
}

/// A host of `environment` must not lie in a domain it delegated to others.
pub fn check_host_not_delegated(host: &str, environment: &Environment) -> Result<()> {
    match environment
        .spec
        .delegated_domains
        .iter()
        .find(|delegated| within(host, delegated))
    {
        Some(delegated) => Err(Error::HostInDelegatedDomain {
            host: host.to_string(),
            delegated: delegated.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::environment::EnvironmentSpec;
    use proptest::prelude::*;

    fn env(name: &str, domain: &str, created: i64) -> Environment {
        let mut e = Environment::new(
            name,
            EnvironmentSpec {
                domain: domain.into(),
                ..EnvironmentSpec::default()
            },
        );
        e.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + created).unwrap(),
        ));
        e
    }

    #[test]
    fn public_suffixes_and_single_labels_are_refused_and_registrable_domains_are_not() {
        for suffix in [
            "com",
            "co.uk",
            "github.io",
            "localhost",
            "test",
            "s3.amazonaws.com",
        ] {
            assert!(is_public_suffix(suffix), "{suffix} should be refused");
            let error = check_domain([], &env("e", suffix, 0)).unwrap_err();
            assert_eq!(error.reason(), "PublicSuffixDomain");
        }
        for domain in [
            "example.com",
            "shop.co.uk",
            "acme.github.io",
            "staging.example.test",
            "a.b",
        ] {
            assert!(!is_public_suffix(domain), "{domain} should be allowed");
        }
    }

    #[test]
    fn the_first_environment_keeps_its_domain_and_a_later_equal_parent_or_child_conflicts() {
        let first = env("first", "shop.example.com", 0);
        for (name, domain) in [
            ("same", "shop.example.com"),
            ("parent", "example.com"),
            ("child", "staging.shop.example.com"),
        ] {
            let later = env(name, domain, 10);
            let all = [first.clone(), later.clone()];
            assert!(check_domain(&all, &first).is_ok());
            let error = check_domain(&all, &later).unwrap_err();
            assert_eq!(error.reason(), "DomainConflict");
            assert!(error.to_string().contains("Environment first"), "{error}");
        }
        // A sibling, or a name that merely ends with the same text, is no conflict.
        for domain in ["api.example.com", "evilshop.example.com"] {
            let other = env("other", domain, 10);
            assert!(check_domain(&[first.clone(), other.clone()], &other).is_ok());
        }
    }

    #[test]
    fn equal_creation_times_are_broken_by_name() {
        let a = env("a", "shop.example.com", 0);
        let b = env("b", "shop.example.com", 0);
        let all = [b.clone(), a.clone()];
        assert!(check_domain(&all, &a).is_ok());
        assert!(check_domain(&all, &b).is_err());
    }

    #[test]
    fn an_environment_that_holds_nothing_does_not_block_others() {
        // c conflicts with b only; b already lost to a, so c holds its domain.
        let a = env("a", "x.example.com", 0);
        let b = env("b", "example.com", 1);
        let c = env("c", "y.example.com", 2);
        let all = [a.clone(), b.clone(), c.clone()];
        assert!(check_domain(&all, &a).is_ok());
        assert!(check_domain(&all, &b).is_err());
        assert!(check_domain(&all, &c).is_ok());
        // A public suffix holds nothing either.
        let com = env("com", "com", -5);
        assert!(check_domain(&[com, a.clone()], &a).is_ok());
    }

    #[test]
    fn a_deleting_environment_releases_its_domain() {
        let mut first = env("first", "shop.example.com", 0);
        let later = env("later", "shop.example.com", 1);
        first.metadata.deletion_timestamp = first.metadata.creation_timestamp.clone();
        assert!(check_domain(&[first, later.clone()], &later).is_ok());
    }

    #[test]
    fn a_delegated_subdomain_is_no_conflict_and_its_hosts_are_not_the_parents() {
        let mut production = env("production", "shop.example.com", 5);
        production.spec.delegated_domains = vec![
            "staging.shop.example.com".into(),
            "preview.shop.example.com".into(),
        ];
        let staging = env("staging", "staging.shop.example.com", 0);
        let preview = env("pr-1", "pr-1.preview.shop.example.com", 9);
        let rogue = env("rogue", "other.shop.example.com", 9);
        let all = [
            production.clone(),
            staging.clone(),
            preview.clone(),
            rogue.clone(),
        ];
        assert!(check_domain(&all, &production).is_ok());
        assert!(check_domain(&all, &staging).is_ok());
        assert!(check_domain(&all, &preview).is_ok());
        assert_eq!(
            check_domain(&all, &rogue).unwrap_err().reason(),
            "DomainConflict"
        );
        assert!(check_host_not_delegated("web.shop.example.com", &production).is_ok());
        let error =
            check_host_not_delegated("web.staging.shop.example.com", &production).unwrap_err();
        assert_eq!(error.reason(), "HostInDelegatedDomain");
        // A later upper Environment that delegates the earlier one's subtree
        // holds its own domain, and none of the earlier one's hosts.
        let mut wide = env("wide", "example.com", 10);
        wide.spec.delegated_domains = vec!["shop.example.com".into()];
        assert!(check_domain(&[staging.clone(), wide.clone()], &wide).is_ok());
        assert!(check_host_not_delegated("web.staging.shop.example.com", &wide).is_err());
        // Delegation is the upper Environment's to give, never the lower one's to take.
        let mut lower_taker = env("lower", "a.shop.example.com", 11);
        lower_taker.spec.delegated_domains = vec!["b.a.shop.example.com".into()];
        assert!(check_domain(&[production.clone(), lower_taker.clone()], &lower_taker).is_err());
    }

    fn holding(mut e: Environment, since: &str) -> Environment {
        e.status = Some(crate::api::EnvironmentStatus {
            domain: Some(crate::api::environment::DomainClaim {
                name: e.spec.domain.clone(),
                since: since.into(),
            }),
            ..Default::default()
        });
        e
    }

    #[test]
    fn an_older_environment_that_moves_onto_a_held_domain_does_not_capture_it() {
        // `old` was created first, with another domain; `shop` holds shop.example.com.
        let shop = holding(env("shop", "shop.example.com", 10), "2026-01-02T00:00:00Z");
        let mut old = holding(env("old", "old.example.com", 0), "2026-01-01T00:00:00Z");
        old.spec.domain = "shop.example.com".into();
        let all = [shop.clone(), old.clone()];
        assert!(check_domain(&all, &shop).is_ok(), "the holder keeps it");
        match check_domain(&all, &old) {
            Err(Error::DomainConflict { holder, .. }) => assert_eq!(holder, "shop"),
            other => panic!("{other:?}"),
        }
        // Moving onto a parent of the held domain does not capture it either.
        old.spec.domain = "example.com".into();
        assert!(check_domain(&[shop.clone(), old.clone()], &old).is_err());
        // Once the holder is gone, the mover gets the domain, and keeps it
        // against an even older newcomer.
        old.spec.domain = "shop.example.com".into();
        assert!(check_domain(&[old.clone()], &old).is_ok());
        let old = holding(old, "2026-03-01T00:00:00Z");
        let older = env("older", "shop.example.com", -100);
        assert!(check_domain(&[old.clone(), older.clone()], &old).is_ok());
        assert!(check_domain(&[old, older.clone()], &older).is_err());
    }

    #[test]
    fn without_recorded_claims_the_creation_order_decides_as_before() {
        let first = env("first", "shop.example.com", 0);
        let second = holding(env("second", "x.example.com", 5), "2026-01-01T00:00:00Z");
        let mut moved = second.clone();
        moved.spec.domain = "shop.example.com".into();
        // `second` holds x.example.com, not its new spec.domain: it queues by creation.
        assert!(check_domain(&[first.clone(), moved.clone()], &first).is_ok());
        assert!(check_domain(&[first, moved.clone()], &moved).is_err());
    }

    proptest! {
        #[test]
        fn domain_checks_never_panic_and_two_environments_never_both_hold_overlapping_domains(
            a in "[a-z0-9.-]{0,40}",
            b in "[a-z0-9.-]{0,40}",
            ta in 0i64..3,
            tb in 0i64..3,
        ) {
            let ea = env("a", &a, ta);
            let eb = env("b", &b, tb);
            let all = [ea.clone(), eb.clone()];
            let ha = check_domain(&all, &ea).is_ok();
            let hb = check_domain(&all, &eb).is_ok();
            let _ = check_host_not_delegated(&b, &ea);
            prop_assert!(!(ha && hb && overlap(&ea, &eb)));
        }
    }
}
