//! What SyncMesh's Kubernetes tests share: the cluster they run against (brought up by
//! `tests/k8s/cluster.sh`, whose exports they read), counted checks that report like TAP, waits
//! for a condition, and failures that print the object that differed.
//!
//! A test is a sequence of checks against one cluster, as a user would go through the steps; a
//! failed check is counted and reported, and the test goes on, so one run shows everything that
//! is wrong. The test fails at the end if any check did.

pub mod http;
pub mod objects;

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kube::Client;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

/// Why a check failed: what was expected, and what was found (objects as YAML).
#[derive(Debug)]
pub struct Failure(pub String);

impl Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure(e.to_string())
            }
        }
    )*};
}
failure_from!(
    kube::Error,
    kube::runtime::wait::Error,
    std::io::Error,
    serde_json::Error,
    serde_yaml::Error,
    redis::RedisError,
    String,
    &str
);

/// The result of a check, or of a step of one.
pub type Outcome<T = ()> = Result<T, Failure>;

/// A failure that shows `object` (as YAML) after saying what was wrong with it.
pub fn differs<T: Serialize>(what: impl Display, object: &T) -> Failure {
    let yaml = serde_yaml::to_string(object).unwrap_or_else(|e| format!("(cannot show it: {e})"));
    Failure(format!("{what}\n--- the object:\n{yaml}"))
}

/// `ensure!(condition, "message {}", args)`: fails the check with the message.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::Failure(format!($($fmt)+)));
        }
    };
}

/// `ensure_eq!(got, want, object)`: fails with both values and `object` as YAML.
#[macro_export]
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $object:expr) => {
        // A match keeps the temporaries of both expressions alive for the comparison.
        match (&$got, &$want) {
            (got, want) => {
                if got != want {
                    return Err($crate::differs(
                        format!("{}: expected {:?}, got {:?}", stringify!($got), want, got),
                        $object,
                    ));
                }
            }
        }
    };
}

/// Counted checks, printed as `ok N - …` / `not ok N - …` with the failure indented below.
pub struct Checks {
    tag: String,
    passed: usize,
    failed: usize,
    started: Instant,
}

impl Checks {
    pub fn new(tag: &str) -> Self {
        Checks { tag: tag.into(), passed: 0, failed: 0, started: Instant::now() }
    }

    /// Logs a step (not counted).
    pub fn say(&self, message: impl Display) {
        let t =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        println!("[{} {:02}:{:02}:{:02}] {message}", self.tag, (t / 3600) % 24, (t / 60) % 60, t % 60);
    }

    pub fn pass(&mut self, description: impl Display) {
        self.passed += 1;
        println!("ok {} - {description}", self.passed + self.failed);
    }

    pub fn fail(&mut self, description: impl Display, why: impl Display) {
        self.failed += 1;
        println!("not ok {} - {description}", self.passed + self.failed);
        let why = why.to_string();
        let lines: Vec<&str> = why.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            println!("    | {line}");
        }
    }

    /// Runs one check; returns whether it passed.
    pub async fn check<Fut: Future<Output = Outcome>>(
        &mut self,
        description: impl Display,
        check: Fut,
    ) -> bool {
        match check.await {
            Ok(()) => {
                self.pass(description);
                true
            }
            Err(why) => {
                self.fail(description, why);
                false
            }
        }
    }

    /// A check that has to pass for the rest to make sense: stops the test if it fails.
    pub async fn require<Fut: Future<Output = Outcome>>(&mut self, description: impl Display, check: Fut) {
        if !self.check(description, check).await {
            self.finish();
        }
    }

    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Prints the summary; panics (the test fails) if any check failed.
    pub fn finish(&self) {
        self.say(format!("finished in {}s", self.started.elapsed().as_secs()));
        println!("{} passed, {} failed", self.passed, self.failed);
        assert!(
            self.failed == 0,
            "{} of {} checks failed (see above)",
            self.failed,
            self.passed + self.failed
        );
    }
}

/// Retries `attempt` every half second until it succeeds or `limit` has passed; the last
/// failure is returned, with how long it was tried.
pub async fn eventually<T, F, Fut>(limit: Duration, mut attempt: F) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                return Err(Failure(format!("{e}\n(still so after {}s)", limit.as_secs())))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The cluster a test runs against, from the exports of `tests/k8s/cluster.sh up`.
pub struct Cluster {
    pub name: String,
    pub kubeconfig: PathBuf,
    /// The directory of the matching kubectl and helm (and, with a node, ctr).
    pub bin: PathBuf,
    /// The repository's root.
    pub root: PathBuf,
    pub client: Client,
}

impl Cluster {
    /// Connects to the cluster named by `KUBECONFIG`, `SYNCMESH_K8S_NAME` and `SYNCMESH_K8S_BIN`.
    pub async fn from_env() -> Cluster {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run this test through its script in tests/k8s/ (see tests/kube/README.md)")
            })
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::try_default().await.expect("a client for $KUBECONFIG");
        Cluster {
            name: var("SYNCMESH_K8S_NAME"),
            kubeconfig: var("KUBECONFIG").into(),
            bin: var("SYNCMESH_K8S_BIN").into(),
            root: Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository"),
            client,
        }
    }

    /// The instance's state directory (where its kubeconfig and logs are).
    pub fn state_dir(&self) -> PathBuf {
        self.kubeconfig.parent().expect("the kubeconfig is in the state directory").to_path_buf()
    }

    pub async fn kubectl(&self, args: &[&str]) -> Outcome<String> {
        run(&self.bin.join("kubectl"), args, None).await
    }

    pub async fn kubectl_input(&self, args: &[&str], input: &str) -> Outcome<String> {
        run(&self.bin.join("kubectl"), args, Some(input)).await
    }

    pub async fn helm(&self, args: &[&str]) -> Outcome<String> {
        run(&self.bin.join("helm"), args, None).await
    }

    /// Runs `tests/k8s/cluster.sh --name <this instance> ARGS`.
    pub async fn cluster_sh(&self, args: &[&str]) -> Outcome<String> {
        let script = self.root.join("tests/k8s/cluster.sh");
        let mut all = vec!["--name", self.name.as_str()];
        all.extend_from_slice(args);
        run(&script, &all, None).await
    }

    /// A fresh namespace with a generated name (`PREFIX-xxxxx`), labelled as a test namespace.
    pub async fn namespace(&self, prefix: &str) -> Outcome<String> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = k8s_openapi::api::core::v1::Namespace {
            metadata: kube::api::ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                labels: Some([("syncmesh.io/test-namespace".to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = api.create(&PostParams::default(), &ns).await?;
        Ok(created.metadata.name.unwrap_or_default())
    }
}

/// Runs a program; its stdout if it succeeds, else a failure with its exit status and output.
pub async fn run(program: &Path, args: &[&str], input: Option<&str>) -> Outcome<String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(|e| Failure(format!("cannot run {}: {e}", program.display())))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(Failure(format!(
            "{} {} failed ({}):\n{}{}",
            program.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            args.join(" "),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Fails unless running `program ARGS` fails with `expected` in its output.
pub async fn refused(program: &Path, args: &[&str], input: Option<&str>, expected: &str) -> Outcome {
    match run(program, args, input).await {
        Ok(out) => Err(Failure(format!("accepted, expected a refusal saying {expected:?}:\n{out}"))),
        Err(Failure(why)) if why.contains(expected) => Ok(()),
        Err(Failure(why)) => Err(Failure(format!("refused, but without {expected:?}:\n{why}"))),
    }
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The condition of this type, if present.
pub fn condition<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The first sample of a metric in Prometheus text (`name` may carry `{labels}`).
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `count`, p50 and p99 (seconds) of a histogram in Prometheus text: the buckets of every series
/// of `metric` whose labels include `wanted` are summed, and a quantile is interpolated inside
/// its bucket as PromQL's histogram_quantile does.
pub fn quantiles(metrics: &str, metric: &str, wanted: &[(&str, &str)]) -> Option<(u64, f64, f64)> {
    let prefix = format!("{metric}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else { continue };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\""))?.strip_suffix('"').map(String::from))
        };
        if wanted.iter().any(|(k, v)| label(k).as_deref() != Some(*v)) {
            continue;
        }
        let le = match label("le").as_deref() {
            Some("+Inf") => f64::INFINITY,
            Some(b) => b.parse().ok()?,
            None => continue,
        };
        let count: f64 = value.trim().parse().ok()?;
        match buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += count,
            None => buckets.push((le, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    let quantile = |q: f64| {
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for (bound, count) in &buckets {
            if *count >= rank {
                if bound.is_infinite() {
                    return lower;
                }
                let span = count - below;
                return lower + (bound - lower) * if span > 0.0 { (rank - below) / span } else { 1.0 };
            }
            (lower, below) = (*bound, *count);
        }
        lower
    };
    Some((total as u64, quantile(0.5), quantile(0.99)))
}
