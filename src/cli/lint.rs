//! `paved lint -f FILE`: the static insights of manifests, offline, with an exit
//! code a CI job can fail a pull request on. Reads what `paved render` reads
//! and applies the same rules as the controller ([`crate::insights`]); no
//! cluster, so nothing that needs one (usage, cost) is judged.

use std::path::PathBuf;

use kube::ResourceExt;

use crate::api::scorecard::{Insight, InsightLevel};
use crate::insights::{
    InsightSettings, application_scorecard, environment_scorecard, evaluate_application,
    parse_level, parse_level_override, scorecard, service_scorecard,
};
use crate::resolve::Snapshot;

/// Exit code when an insight is at or above the `--fail-on` level.
pub const EXIT_INSIGHTS: u8 = 1;
/// Exit code when the manifests cannot be read or parsed.
pub const EXIT_INPUT: u8 = 2;

/// The scorecard's thresholds, shared by `paved run` and `paved lint`.
#[derive(clap::Args, Clone, Debug)]
pub struct InsightArgs {
    /// Fewest pods a production Service may run (rule production-replicas).
    #[arg(
        long = "insights-production-min-replicas",
        env = "PAVED_INSIGHTS_PRODUCTION_MIN_REPLICAS",
        default_value_t = crate::children::PRODUCTION_DEFAULT_REPLICAS
    )]
    pub production_min_replicas: i32,
    /// Rules not evaluated, comma-separated, e.g. image-digest,application-description.
    #[arg(
        long = "insights-disable",
        env = "PAVED_INSIGHTS_DISABLE",
        value_delimiter = ','
    )]
    pub disable: Vec<String>,
    /// Levels in place of the table's, comma-separated rule=level, e.g. image-digest=warning.
    #[arg(
        long = "insights-level",
        env = "PAVED_INSIGHTS_LEVELS",
        value_delimiter = ','
    )]
    pub levels: Vec<String>,
    /// Rule over-provisioned: the busiest pod under this percent of its CPU or memory request…
    #[arg(
        long = "insights-over-provisioned-percent",
        env = "PAVED_INSIGHTS_OVER_PROVISIONED_PERCENT",
        default_value_t = 25
    )]
    pub over_provisioned_percent: u32,
    /// …for this long (e.g. 24h, 7d, 30m).
    #[arg(
        long = "insights-over-provisioned-for",
        env = "PAVED_INSIGHTS_OVER_PROVISIONED_FOR",
        default_value = "24h"
    )]
    pub over_provisioned_for: String,
    /// …and a pod's CPU request exceeds its use by at least this many millicores
    /// (no insight for a saving not worth a change).
    #[arg(
        long = "insights-over-provisioned-min-millicores",
        env = "PAVED_INSIGHTS_OVER_PROVISIONED_MIN_MILLICORES",
        default_value_t = 0
    )]
    pub over_provisioned_min_millicores: u32,
    /// …or its memory request by at least this many MiB.
    #[arg(
        long = "insights-over-provisioned-min-mib",
        env = "PAVED_INSIGHTS_OVER_PROVISIONED_MIN_MIB",
        default_value_t = 0
    )]
    pub over_provisioned_min_mib: u32,
    /// Rule idle: every pod at or under this many millicores of CPU…
    #[arg(
        long = "insights-idle-millicores",
        env = "PAVED_INSIGHTS_IDLE_MILLICORES",
        default_value_t = 1
    )]
    pub idle_millicores: u32,
    /// …for this long (e.g. 72h, 3d).
    #[arg(
        long = "insights-idle-for",
        env = "PAVED_INSIGHTS_IDLE_FOR",
        default_value = "72h"
    )]
    pub idle_for: String,
}

fn period(flag: &str, text: &str) -> Result<jiff::SignedDuration, String> {
    crate::lifecycle::parse_ttl(text)
        .ok_or_else(|| format!("--{flag} {text:?}: expected a period like 30m, 24h or 7d"))
}

impl InsightArgs {
    /// The settings, refused when a rule id or level is unknown.
    pub fn settings(&self) -> Result<InsightSettings, String> {
        let mut levels = std::collections::BTreeMap::new();
        for text in self.levels.iter().filter(|t| !t.trim().is_empty()) {
            let (rule, level) = parse_level_override(text)?;
            levels.insert(rule, level);
        }
        let settings = InsightSettings {
            production_min_replicas: self.production_min_replicas,
            disabled: self
                .disable
                .iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect(),
            levels,
            usage: crate::usage::Thresholds {
                low_percent: self.over_provisioned_percent,
                low_for: period("insights-over-provisioned-for", &self.over_provisioned_for)?,
                low_min_saving_millicores: self.over_provisioned_min_millicores,
                low_min_saving_mib: self.over_provisioned_min_mib,
                idle_millicores: self.idle_millicores,
                idle_for: period("insights-idle-for", &self.idle_for)?,
            },
        };
        settings.check()?;
        Ok(settings)
    }
}

/// Prices of the cost estimate (`paved run`); both or none.
#[derive(clap::Args, Clone, Debug)]
pub struct CostArgs {
    /// Price of one CPU core for one hour, e.g. 0.031. With --cost-gib-hour,
    /// statuses carry a monthly cost estimate from requests.
    #[arg(long = "cost-cpu-hour", env = "PAVED_COST_CPU_HOUR")]
    pub cpu_hour: Option<f64>,
    /// Price of one GiB of memory for one hour, e.g. 0.0042.
    #[arg(long = "cost-gib-hour", env = "PAVED_COST_GIB_HOUR")]
    pub gib_hour: Option<f64>,
    /// Currency (or unit) of the prices, shown beside every estimate.
    #[arg(
        long = "cost-currency",
        env = "PAVED_COST_CURRENCY",
        default_value = "USD"
    )]
    pub currency: String,
}

impl CostArgs {
    /// The prices, none when neither is set; refused when only one is, or one is
    /// negative or not finite.
    pub fn prices(&self) -> Result<Option<crate::cost::Prices>, String> {
        match (self.cpu_hour, self.gib_hour) {
            (None, None) => Ok(None),
            (Some(cpu_hour), Some(gib_hour)) => {
                if !(cpu_hour.is_finite()
                    && gib_hour.is_finite()
                    && cpu_hour >= 0.0
                    && gib_hour >= 0.0)
                {
                    return Err(
                        "--cost-cpu-hour and --cost-gib-hour must be prices of at least 0".into(),
                    );
                }
                Ok(Some(crate::cost::Prices {
                    cpu_hour,
                    gib_hour,
                    currency: self.currency.clone(),
                }))
            }
            _ => Err("set both --cost-cpu-hour and --cost-gib-hour, or neither".into()),
        }
    }
}

/// `paved lint`'s own arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct LintArgs {
    /// Manifests (Environments, Applications, Services; other kinds are skipped):
    /// files, folders (their .yaml/.yml/.json files) or `-` for stdin, as `paved render` reads them.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Exit with 1 when an insight is at this level or above: info, warning,
    /// critical, or never.
    #[arg(long, default_value = "critical")]
    pub fail_on: String,
    #[command(flatten)]
    pub insights: InsightArgs,
}

/// The report of a lint: the text to print and the insights' levels.
#[derive(Debug, Default)]
pub struct Linted {
    pub text: String,
    /// The most severe level found, if any insight was.
    pub worst: Option<InsightLevel>,
}

fn push_insights(out: &mut String, insights: &[Insight], worst: &mut Option<InsightLevel>) {
    for insight in insights {
        out.push_str(&format!(
            "  {:<8} {}: {}\n",
            insight.level.as_str(),
            insight.rule,
            insight.message
        ));
        *worst = (*worst).max(Some(insight.level));
    }
}

/// The insights of every Service and Application of the snapshot, then the
/// score of each Environment. A Service in no Environment of the manifests is
/// judged without one (the production rules do not apply to it).
pub fn lint(snapshot: &Snapshot, settings: &InsightSettings) -> Linted {
    let mut out = String::new();
    let mut worst = None;
    let (mut critical, mut warning, mut info) = (0, 0, 0);
    let mut count = |insights: &[Insight]| {
        for i in insights {
            match i.level {
                InsightLevel::Critical => critical += 1,
                InsightLevel::Warning => warning += 1,
                InsightLevel::Info => info += 1,
            }
        }
    };
    for service in &snapshot.services {
        let namespace = service.namespace().unwrap_or_default();
        let environment = snapshot.environment_of(&namespace, "Service").ok();
        let card = service_scorecard(service, environment, None, settings);
        out.push_str(&format!(
            "Service {namespace}/{}: score {}{}\n",
            service.name_any(),
            card.score,
            if environment.is_none() {
                " (in no Environment of these manifests: production rules not applied)"
            } else {
                ""
            }
        ));
        count(&card.insights);
        push_insights(&mut out, &card.insights, &mut worst);
    }
    for application in &snapshot.applications {
        let rolled = application_scorecard(application, snapshot, None, settings);
        let own = scorecard(&evaluate_application(application, settings));
        out.push_str(&format!(
            "Application {}/{}: score {} (with its Services)\n",
            application.namespace().unwrap_or_default(),
            application.name_any(),
            rolled.score
        ));
        count(&own.insights);
        push_insights(&mut out, &own.insights, &mut worst);
    }
    for environment in &snapshot.environments {
        let card = environment_scorecard(environment, snapshot, None, settings);
        out.push_str(&format!(
            "Environment {}: score {}\n",
            environment.name_any(),
            card.score
        ));
    }
    out.push_str(&format!(
        "{critical} critical, {warning} warning, {info} info\n"
    ));
    Linted { text: out, worst }
}

/// Run `paved lint`; the exit code says whether CI should fail.
pub fn main(args: &LintArgs) -> u8 {
    let fail_on = match args.fail_on.as_str() {
        "never" => None,
        level => match parse_level(level) {
            Ok(level) => Some(level),
            Err(error) => {
                eprintln!("paved lint: --fail-on: {error} (or never)");
                return EXIT_INPUT;
            }
        },
    };
    let settings = match args.insights.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("paved lint: {error}");
            return EXIT_INPUT;
        }
    };
    let snapshot = match crate::cli::render::read_manifests(&args.files)
        .and_then(|i| crate::cli::render::parse(&i))
    {
        Ok(snapshot) => snapshot,
        Err(error) => {
            eprintln!("paved lint: {error}");
            return EXIT_INPUT;
        }
    };
    let linted = lint(&snapshot, &settings);
    print!("{}", linted.text);
    match (fail_on, linted.worst) {
        (Some(threshold), Some(worst)) if worst >= threshold => {
            eprintln!(
                "paved lint: failing: an insight at level {} or above",
                threshold.as_str()
            );
            EXIT_INSIGHTS
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION: &str = r#"
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: production}
spec: {type: production, domain: shop.example.com}
---
apiVersion: paved.dev/v1alpha1
kind: Application
metadata: {name: shop, namespace: production}
spec: {owner: team-shop, description: The shop, links: [{title: Repo, url: 'https://example.com/shop'}]}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: production}
spec:
  application: shop
  image: ghcr.io/acme/shop-web:1.0.0@sha256:abcd
  ports: [{name: http, port: 8080}]
  health: {path: /healthz, port: http}
  resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 256Mi}}
"#;

    #[test]
    fn a_service_on_the_paved_path_lints_clean() {
        let linted = lint(
            &crate::cli::render::parse(PRODUCTION).unwrap(),
            &InsightSettings::default(),
        );
        assert_eq!(linted.worst, None, "{}", linted.text);
        assert!(
            linted.text.contains("Service production/web: score 100")
                && linted.text.contains("Environment production: score 100")
                && linted.text.ends_with("0 critical, 0 warning, 0 info\n"),
            "{}",
            linted.text
        );
    }

    #[test]
    fn a_latest_image_at_one_pod_in_production_lints_critical_and_says_what_to_change() {
        let careless = PRODUCTION
            .replace("shop-web:1.0.0@sha256:abcd", "shop-web:latest")
            .replace("application: shop\n", "application: shop\n  replicas: 1\n");
        let linted = lint(
            &crate::cli::render::parse(&careless).unwrap(),
            &InsightSettings::default(),
        );
        assert_eq!(linted.worst, Some(InsightLevel::Critical));
        assert!(
            linted.text.contains("  critical image-pinned: image ghcr.io/acme/shop-web:latest follows latest: pin spec.image")
                && linted.text.contains("  critical production-replicas: as few as 1 pod(s) in production, below 2")
                && linted.text.contains("2 critical, 1 warning, 0 info"),
            "{}",
            linted.text
        );
    }

    #[test]
    fn prices_are_both_or_none_and_never_negative() {
        let args = |cpu_hour, gib_hour| CostArgs {
            cpu_hour,
            gib_hour,
            currency: "EUR".into(),
        };
        assert_eq!(args(None, None).prices(), Ok(None));
        assert!(args(Some(0.04), None).prices().is_err());
        assert!(args(Some(-1.0), Some(0.01)).prices().is_err());
        assert!(args(Some(f64::NAN), Some(0.01)).prices().is_err());
        let prices = args(Some(0.04), Some(0.005)).prices().unwrap().unwrap();
        assert_eq!((prices.cpu_hour, prices.currency.as_str()), (0.04, "EUR"));
    }

    #[test]
    fn insight_flags_with_an_unknown_rule_or_level_are_refused() {
        let args = |disable: &[&str], levels: &[&str]| InsightArgs {
            production_min_replicas: 2,
            disable: disable.iter().map(|s| s.to_string()).collect(),
            levels: levels.iter().map(|s| s.to_string()).collect(),
            over_provisioned_percent: 25,
            over_provisioned_for: "24h".into(),
            over_provisioned_min_millicores: 0,
            over_provisioned_min_mib: 0,
            idle_millicores: 1,
            idle_for: "72h".into(),
        };
        assert!(args(&["image-pinnd"], &[]).settings().is_err());
        assert!(args(&[], &["image-digest=severe"]).settings().is_err());
        assert!(args(&[], &["image-digest"]).settings().is_err());
        let empty_env_var = args(&[""], &[""]).settings().unwrap();
        assert_eq!(empty_env_var, InsightSettings::default());
        let set = args(&["health-check"], &["image-digest=critical"])
            .settings()
            .unwrap();
        assert!(set.disabled.contains("health-check"));
        assert_eq!(set.levels["image-digest"], InsightLevel::Critical);
        let mut periods = args(&[], &[]);
        periods.idle_for = "3d".into();
        periods.over_provisioned_for = "90m".into();
        let usage = periods.settings().unwrap().usage;
        assert_eq!(usage.idle_for, jiff::SignedDuration::from_hours(72));
        assert_eq!(usage.low_for, jiff::SignedDuration::from_mins(90));
        periods.idle_for = "three days".into();
        assert!(
            periods
                .settings()
                .unwrap_err()
                .contains("insights-idle-for")
        );
        periods.idle_for = "1h".into();
        periods.over_provisioned_percent = 0;
        assert!(periods.settings().is_err());
    }
}
