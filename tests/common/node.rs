//! Starting and stopping the real `pairdb-storage` binary: free ports, the
//! child process with its temporary data directory and stderr log, waiting
//! until it answers HealthCheck, signals and waiting for its exit. The child
//! process is killed when the [`Node`] is dropped.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tonic::transport::Endpoint;

use super::client::{
    client_on, AdminClient, Client, PeerClient, StorageAdminServiceClient, StoragePeerServiceClient,
};
use super::pb;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pairdb-storage");

/// How long a node may take to answer its first HealthCheck.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The node id of the embedded default configuration (shards.toml).
pub const EMBEDDED_NODE_ID: &str = "pairdb-local";

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub shards: usize,
    pub node_id: String,
    /// Contents of a config file passed with `--config`, if any.
    pub config: Option<String>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            shards: 2,
            node_id: "node-test".into(),
            config: None,
        }
    }
}

/// A running storage node (child process) and its temporary directory.
pub struct Node {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub node_id: String,
    pub shards: usize,
    stderr_path: PathBuf,
    dir: TempDir,
}

/// A port nobody listens on right now (bind to port 0, then release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A command for the binary whose stderr goes to `stderr_path`; the child
/// gets SIGKILL if the test thread that spawned it dies first.
pub fn command(stderr_path: &Path) -> Command {
    // PAIRDB_TEST_NODE_BIN runs the tests (or a fixture generator) against
    // another build, e.g. an earlier release.
    let bin = std::env::var("PAIRDB_TEST_NODE_BIN").unwrap_or_else(|_| BIN.to_string());
    let mut cmd = Command::new(bin);
    let stderr = File::create(stderr_path).expect("create stderr log file");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .env_remove("RUST_LOG");
    // SAFETY: the closure runs in the forked child before exec; prctl(2) is
    // async-signal-safe and touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Node {
    /// Starts a node with `shards` shards and default options.
    pub async fn start(shards: usize) -> Node {
        Node::start_with(NodeOptions {
            shards,
            ..NodeOptions::default()
        })
        .await
    }

    /// Starts a node and waits until it answers HealthCheck. Retries on a
    /// fresh port if another process grabbed the chosen one meanwhile.
    pub async fn start_with(opts: NodeOptions) -> Node {
        Node::start_on_free_port("node", |port| Node::spawn(&opts, port)).await
    }

    /// Spawns with `spawn` on a free port and waits until the node answers
    /// HealthCheck, retrying on a fresh port (up to three times) if another
    /// process grabbed the chosen one meanwhile; panics naming `what`.
    async fn start_on_free_port(what: &str, spawn: impl Fn(u16) -> Node) -> Node {
        let mut last_err = String::new();
        for _ in 0..3 {
            let mut node = spawn(free_port());
            match node.wait_ready().await {
                Ok(()) => return node,
                Err(e) => {
                    let in_use = node.stderr().contains("already serves");
                    last_err = format!("{e}\n--- node stderr ---\n{}", node.stderr());
                    if !in_use {
                        break;
                    }
                }
            }
        }
        panic!("{what} did not become ready: {last_err}");
    }

    /// Spawns the binary on `port` without waiting for readiness.
    pub fn spawn(opts: &NodeOptions, port: u16) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        Node::spawn_with_data(dir, opts, port, &data_dir, &[])
    }

    /// Spawns the binary on `port` with its data in `data_dir`, a directory
    /// the caller owns and keeps across restarts (so a test can stop a node
    /// and start another on the same data). Stderr and config go to a fresh
    /// temporary directory of this node. Does not wait for readiness.
    pub fn spawn_on_data_dir(opts: &NodeOptions, port: u16, data_dir: &Path) -> Node {
        Node::spawn_on_data_dir_with(opts, port, data_dir, &[])
    }

    /// [`Node::spawn_on_data_dir`] with `extra_args` appended to the command
    /// line (flags [`NodeOptions`] has no field for).
    pub fn spawn_on_data_dir_with(
        opts: &NodeOptions,
        port: u16,
        data_dir: &Path,
        extra_args: &[&str],
    ) -> Node {
        Node::spawn_with_data(
            tempfile::tempdir().expect("tempdir"),
            opts,
            port,
            data_dir,
            extra_args,
        )
    }

    /// Spawns the binary on `port` with its data in `data_dir`; stderr and
    /// config go to `dir`, which the node keeps.
    fn spawn_with_data(
        dir: TempDir,
        opts: &NodeOptions,
        port: u16,
        data_dir: &Path,
        extra_args: &[&str],
    ) -> Node {
        let stderr_path = dir.path().join("stderr.log");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut cmd = command(&stderr_path);
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--shards")
            .arg(opts.shards.to_string())
            .arg("--node-id")
            .arg(&opts.node_id)
            .args(extra_args);
        if let Some(text) = &opts.config {
            let path = dir.path().join("shards.toml");
            std::fs::write(&path, text).expect("write config");
            cmd.arg("--config").arg(path);
        }
        let child = cmd.spawn().expect("spawn pairdb-storage");
        Node {
            child: Some(child),
            addr,
            node_id: opts.node_id.clone(),
            shards: opts.shards,
            stderr_path,
            dir,
        }
    }

    /// Spawns the binary as a user would run it: working directory `cwd`,
    /// command line `--listen 127.0.0.1:PORT` followed by exactly `args`.
    /// Nothing else is added (no data directory, shard count, node id or
    /// config file), so the embedded defaults apply where `args` sets
    /// nothing and relative paths in `args` resolve against `cwd`. The
    /// [`Node`]'s `node_id` and `shards` are taken from `--node-id` and
    /// `--shards` in `args`, else the embedded defaults
    /// ([`EMBEDDED_NODE_ID`]; 0 = one shard per CPU). Stderr goes to a fresh
    /// temporary directory of this node, not into `cwd`. Does not wait for
    /// readiness.
    pub fn spawn_in(cwd: &Path, port: u16, args: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr_path = dir.path().join("stderr.log");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let flag = |name: &str| {
            args.windows(2)
                .find(|w| w[0] == name)
                .map(|w| w[1].to_string())
        };
        let child = command(&stderr_path)
            .current_dir(cwd)
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .spawn()
            .expect("spawn pairdb-storage");
        Node {
            child: Some(child),
            addr,
            node_id: flag("--node-id").unwrap_or_else(|| EMBEDDED_NODE_ID.to_string()),
            shards: flag("--shards").map_or(0, |n| n.parse().expect("--shards N")),
            stderr_path,
            dir,
        }
    }

    /// [`Node::spawn_in`], then waits until the node answers HealthCheck.
    /// Retries on a fresh port if another process grabbed the chosen one.
    pub async fn start_in(cwd: &Path, args: &[&str]) -> Node {
        let what = format!("node in {} with {args:?}", cwd.display());
        Node::start_on_free_port(&what, |port| Node::spawn_in(cwd, port, args)).await
    }

    /// Waits up to `timeout` for the process to exit without blocking the
    /// async runtime's worker (client connections keep being driven).
    pub async fn wait_exit_async(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Retries HealthCheck until it answers healthy.
    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("never tried");
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Err(format!("node exited before it was ready: {status}"));
            }
            match self.try_client().await {
                Ok(mut c) => match c.health_check(pb::HealthCheckRequest {}).await {
                    Ok(r) if r.get_ref().healthy => return Ok(()),
                    Ok(r) => last = format!("unhealthy: {:?}", r.get_ref()),
                    Err(s) => last = format!("health check failed: {s}"),
                },
                Err(e) => last = format!("connect failed: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not ready after {READY_TIMEOUT:?}: {last}"))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An endpoint for this node, for a caller that sets HTTP/2 options of
    /// its own (window sizes) before connecting.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(self.url())
            .expect("endpoint url")
            .connect_timeout(Duration::from_secs(5))
    }

    /// A new client on its own HTTP/2 connection.
    pub async fn try_client(&self) -> Result<Client, tonic::transport::Error> {
        Ok(client_on(self.endpoint().connect().await?))
    }

    /// A client of the admin service (RangeDigest, Cleanup, Undrain) on its
    /// own HTTP/2 connection; panics if it cannot connect.
    pub async fn admin(&self) -> AdminClient {
        let channel = self.endpoint().connect().await.expect("connect to node");
        StorageAdminServiceClient::new(channel)
    }

    /// A client of the peer service (ApplyVersions) on its own HTTP/2
    /// connection; panics if it cannot connect.
    pub async fn peer(&self) -> PeerClient {
        let channel = self.endpoint().connect().await.expect("connect to node");
        StoragePeerServiceClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX)
    }

    /// A new client on its own HTTP/2 connection; panics if it cannot connect.
    pub async fn client(&self) -> Client {
        self.try_client().await.expect("connect to node")
    }

    /// Everything the node wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("child").id() as i32
    }

    /// Sends `signal` to the node process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) takes plain integers and touches no memory; the
        // pid is our own child's, not yet reaped.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Sends SIGKILL and reaps the process at once (a blocking waitpid that
    /// returns as soon as it is dead, so a restart can follow immediately).
    pub fn kill_and_reap(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        self.child.as_mut().expect("child").wait().expect("waitpid")
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_exit(self.child.as_mut().expect("child"), timeout)
    }

    /// The temporary directory holding data dir, config and stderr log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
