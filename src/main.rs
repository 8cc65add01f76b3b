//! `paved`: the controller (`run`), the CRDs (`crd`), an offline renderer (`render`),
//! an offline linter (`lint`) and the Day-2 commands (`rollback`, `restart`, `stop`, `start`; see `paved::cli`).
//! This file only wires: arguments, logging, the HTTP endpoints, leader election,
//! the controllers and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Parser, Subcommand};
use paved::reconcile::PublishedStores;
use paved::runtime::controllers::{self, Settings, stopped};
use paved::runtime::fence::{Fence, fenced_client};
use paved::runtime::http::{self, Health};
use paved::runtime::leader::{LeaderElector, LeaseConfig};
use paved::runtime::metrics::Metrics;
use paved::runtime::page::{Pages, TokenGate};
use paved::runtime::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "paved",
    version,
    about = "Paved: an Internal Developer Platform as a Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (uses KUBECONFIG or the in-cluster service account).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as multi-document YAML, or write one file per kind.
    Crd {
        /// Write `<plural>.paved.dev.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Print the paved-path insights of the given manifests (no cluster needed);
    /// exit 1 on an insight at the --fail-on level (default critical), 2 on unreadable input.
    Lint(paved::cli::lint::LintArgs),
    /// Print the Kubernetes objects Paved would create for the given manifests (no cluster needed).
    Render {
        /// Multi-document YAML file(s) or directories of them with Environments, Applications and Services ('-' for stdin).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Day-2 operations (rollback, restart, stop, start), through the kubeconfig like kubectl.
    #[command(flatten)]
    Day2(paved::cli::Day2Command),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "PAVED_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Log format.
    #[arg(long, env = "PAVED_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Reconciles running at once, per kind (turns shared between namespaces;
    /// 0: no limit).
    #[arg(long, env = "PAVED_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Run the controllers only while holding the leader Lease.
    #[arg(long, env = "PAVED_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "PAVED_LEASE_NAME", default_value = "paved-controller")]
    lease_name: String,
    /// Namespace of the leader Lease (default: POD_NAMESPACE, else "default").
    #[arg(long, env = "PAVED_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a standby waits, after it last saw the Lease renewed, before taking it over.
    #[arg(long, env = "PAVED_LEASE_DURATION", default_value_t = 15)]
    lease_duration: u64,
    /// Seconds the leader keeps writing after the start of its last successful
    /// renewal; past them it stops its controllers and competes again. Must be
    /// shorter than the lease duration.
    #[arg(long, env = "PAVED_RENEW_DEADLINE", default_value_t = 10.0)]
    renew_deadline: f64,
    /// Seconds between two attempts to acquire or renew the Lease (also the
    /// longest a standby takes to notice a released Lease).
    #[arg(long, env = "PAVED_RETRY_PERIOD", default_value_t = 2.0)]
    retry_period: f64,
    /// Identity in the Lease and on Events (default: POD_NAME, else hostname-pid).
    #[arg(long, env = "PAVED_IDENTITY")]
    identity: Option<String>,
    /// Labels (`key=value,...`) of the ingress controller's namespace: an
    /// Environment with `guardrails.networkIsolation` admits traffic from it.
    #[arg(
        long,
        env = "PAVED_INGRESS_NAMESPACE_SELECTOR",
        default_value = paved::children::guardrails::DEFAULT_INGRESS_NAMESPACE_SELECTOR,
        value_parser = parse_labels,
    )]
    ingress_namespace_selector: std::collections::BTreeMap<String, String>,
    #[command(flatten)]
    insights: paved::cli::lint::InsightArgs,
    #[command(flatten)]
    cost: paved::cli::lint::CostArgs,
    /// Seconds between two reads of metrics.k8s.io (usage in status; a status
    /// changes only when a figure moves by a step).
    #[arg(long, env = "PAVED_USAGE_INTERVAL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..))]
    usage_interval: u64,
    /// Seconds after which an unchanged Environment, Application or Service is
    /// reconciled again, as a safety net (changes are seen at once through the
    /// watches; an idle cluster costs no writes either way). Each object at its
    /// own phase of the period, so resyncs come spread, not in waves.
    #[arg(long, env = "PAVED_RESYNC_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..))]
    resync_seconds: u64,
    /// Seconds between two returns of freed memory to the system (glibc's
    /// `malloc_trim`: what was freed in the middle of the heap stays resident
    /// otherwise); 0: never.
    #[arg(long, env = "PAVED_MALLOC_TRIM_SECONDS", default_value_t = 10)]
    malloc_trim_seconds: u64,
    /// Serve the catalog page (/catalog) only to requests carrying a bearer token
    /// the API server accepts (TokenReview) for a user who may list Environments,
    /// Applications and Services (SubjectAccessReview). Needs `create` on
    /// tokenreviews and subjectaccessreviews.
    #[arg(long, env = "PAVED_PAGE_REQUIRE_TOKEN", default_value_t = false, action = clap::ArgAction::Set)]
    page_require_token: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { out_dir: None } => {
            print!("{}", paved::cli::crd::all_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { out_dir: Some(dir) } => match paved::cli::crd::write_dir(&dir) {
            Ok(files) => {
                for file in files {
                    eprintln!("wrote {}", dir.join(file).display());
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("paved crd: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Render { files } => render(&files),
        Command::Lint(args) => ExitCode::from(paved::cli::lint::main(&args)),
        Command::Day2(command) => paved::cli::main(command),
        Command::Run(args) => {
            limit_malloc_arenas();
            return_freed_memory(args.malloc_trim_seconds);
            telemetry::init(args.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let result = runtime.block_on(run(args));
            // Do not wait on tasks abandoned by the shutdown backstop.
            runtime.shutdown_timeout(Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "paved stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// glibc's malloc gives each thread that allocates under contention an arena
/// of its own (up to eight per core), and each arena keeps what was freed in
/// it. Two arenas (README, Performance: 22.2 against 25.1 KiB per Service at
/// 3,000), set before the runtime starts its threads, unless
/// `MALLOC_ARENA_MAX` says otherwise.
///
/// And blocks of 128 KiB and more (a watch's list as it is read, a large
/// response) are mapped and unmapped on their own, always: glibc would
/// otherwise raise that threshold to the largest block freed so far, and serve
/// the next ones from the heap, where what is freed stays resident. Unless
/// `GLIBC_TUNABLES` or `MALLOC_MMAP_THRESHOLD_` says otherwise.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets an allocator parameter; no thread but this
        // one exists yet.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("GLIBC_TUNABLES") && unset("MALLOC_MMAP_THRESHOLD_") {
                // A fixed threshold; the top of the heap is trimmed past the same.
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}

/// glibc's `free` gives memory back to the system only from the top of the
/// heap; pages freed in the middle (a watch's list decoded, a reconcile's
/// copies, a usage poll) stay resident until something reuses them. Every
/// `seconds` (`--malloc-trim-seconds`, 0: never) a thread of its own asks glibc
/// to release every whole free page (`malloc_trim`, a few milliseconds with
/// each arena locked in turn). README, Performance: what it saves.
fn return_freed_memory(seconds: u64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if seconds == 0 {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("paved-trim".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(seconds));
                    // SAFETY: malloc_trim only releases free pages of malloc's
                    // own arenas, under their locks; it is thread-safe.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
        if let Err(error) = spawned {
            eprintln!("paved: no thread to return freed memory: {error}");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = seconds;
}

fn render(files: &[PathBuf]) -> ExitCode {
    let input = match paved::cli::render::read_manifests(files) {
        Ok(input) => input,
        Err(error) => {
            eprintln!("paved render: {error}");
            return ExitCode::FAILURE;
        }
    };
    let snapshot = match paved::cli::render::parse(&input) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            eprintln!("paved render: {error}");
            return ExitCode::FAILURE;
        }
    };
    let rendered = paved::cli::render::render(&snapshot);
    print!("{}", rendered.yaml);
    for problem in &rendered.problems {
        eprintln!("paved render: {problem}");
    }
    if rendered.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let lease = args
        .leader_elect
        .then(|| lease_config(&args, &identity))
        .transpose()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    let published_stores = PublishedStores::default();
    let insights = args.insights.settings()?;
    let metrics = Arc::new(Metrics::new(published_stores.clone(), insights.clone()));
    let pages = Arc::new(Pages {
        stores: published_stores.clone(),
        gate: args.page_require_token.then(TokenGate::default),
    });
    let health = Arc::new(Health {
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
        catalog_client: std::sync::OnceLock::new(),
        pages: pages.clone(),
        backstage: Default::default(),
    });
    let server = tokio::spawn(http::serve(args.listen, health.clone(), stopped(&stop_rx)));

    let mut config = kube::Config::infer().await?;
    // Names this replica in the API server's audit log.
    config.headers.push((
        ::http::header::USER_AGENT,
        ::http::HeaderValue::from_str(&format!("paved/{identity}"))?,
    ));
    let client = kube::Client::try_from(config.clone())?;
    let _ = health.catalog_client.set(client.clone());
    if let Some(gate) = &pages.gate {
        gate.connect(client.clone());
    }
    let settings = Settings {
        concurrency: args.concurrency,
        instance: Some(identity.clone()),
        ingress_namespace_labels: args.ingress_namespace_selector.clone(),
        insights,
        prices: args.cost.prices()?,
        usage_interval: Duration::from_secs(args.usage_interval),
        resync: Duration::from_secs(args.resync_seconds),
        published_stores,
    };

    // A standby replica is healthy and ready: it serves its purpose by waiting.
    health.set_ready(true);
    let Some(lease) = lease else {
        tokio::select! {
            () = controllers::run(client.clone(), metrics.clone(), settings, stop_rx.clone()) => {}
            () = grace_expired(&stop_rx) => {}
        }
        return stop_server(server).await;
    };

    // The controllers write only through the fence, which the elector grants
    // while this replica's leadership is certain; the elector's own client is not fenced.
    let fence = Arc::new(Fence::default());
    let fenced = fenced_client(config, fence.clone())?;
    let elector = LeaderElector::new(client.clone(), lease, fence.clone());
    loop {
        tokio::select! {
            () = elector.acquire() => {}
            () = stopped(&stop_rx) => break,
        }
        metrics.set_leader(true);
        // Boxed, so that dropping it stops the controllers there and then; fused,
        // so that awaiting it again once it has returned (it returns on shutdown
        // too) waits instead of panicking.
        let mut controllers = Box::pin(futures::FutureExt::fuse(controllers::run(
            fenced.clone(),
            metrics.clone(),
            settings.clone(),
            stop_rx.clone(),
        )));
        let shutting_down = tokio::select! {
            () = &mut controllers => true,
            () = elector.hold() => false,
            () = stopped(&stop_rx) => true,
        };
        metrics.set_leader(false);
        if shutting_down {
            // Hand over at once: no new write, the ones on the wire land, then the Lease goes.
            fence.revoke();
            tokio::select! {
                () = &mut controllers => {}
                () = fence.drained() => {}
                () = tokio::time::sleep(WRITES_LAND) => {}
            }
            drop(controllers);
            elector.release().await;
            break;
        }
        // Lost the Lease or could not renew it in time: the fence already refuses
        // writes; stop the controllers, keep serving /healthz, and compete again.
        drop(controllers);
        tracing::warn!("controllers stopped; standing by for the Lease again");
    }
    stop_server(server).await
}

/// How long a stopping leader waits for its writes on the wire before releasing the Lease.
const WRITES_LAND: Duration = Duration::from_secs(2);

fn lease_config(args: &RunArgs, identity: &str) -> Result<LeaseConfig, String> {
    let seconds = |name: &str, value: f64| {
        Duration::try_from_secs_f64(value)
            .map_err(|_| format!("--{name} {value} is not a duration in seconds"))
    };
    let config = LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into()),
        identity: identity.to_string(),
        lease_duration: Duration::from_secs(args.lease_duration),
        renew_deadline: seconds("renew-deadline", args.renew_deadline)?,
        retry_period: seconds("retry-period", args.retry_period)?,
    };
    config.check()?;
    Ok(config)
}

/// Wait for the HTTP endpoints to stop, but not for a scraper's keep-alive connection.
async fn stop_server(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<(), Box<dyn std::error::Error>> {
    match tokio::time::timeout(Duration::from_secs(2), server).await {
        Ok(joined) => Ok(joined??),
        Err(_) => Ok(()),
    }
}

/// How long in-flight reconciles get to finish after SIGTERM before Paved stops anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Resolves `SHUTDOWN_GRACE` after shutdown was requested: a backstop, so a
/// reconcile stuck on the network never keeps a stopping replica (and its Lease) alive.
async fn grace_expired(stop: &tokio::sync::watch::Receiver<bool>) {
    stopped(stop).await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
    tracing::warn!(grace = ?SHUTDOWN_GRACE, "in-flight reconciles did not finish in time; stopping anyway");
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `key=value,...` → labels, for `--ingress-namespace-selector`.
fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    paved::children::guardrails::parse_label_selector(text)
        .ok_or_else(|| format!("{text:?} is not a list of key=value labels"))
}

fn default_identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "paved".into());
        format!("{host}-{}", std::process::id())
    })
}
