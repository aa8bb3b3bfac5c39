//! nginx as a plain reverse proxy in front of one or more simulators.
//!
//! Choices, so that nginx gets a fair comparison:
//! - `worker_processes` is the number of cores (`auto`), as lmlb's tokio
//!   runtime starts one worker thread per core.
//! - HTTP/1.1 with `keepalive` connections to the upstreams, as lmlb keeps a
//!   connection pool.
//! - `proxy_buffering off`, so that SSE tokens pass through at once, as they
//!   do through lmlb.
//! - No access log (lmlb logs nothing per request by default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::BenchError;
use crate::loadgen::http::get_json;
use crate::process::{ChildProcess, free_port, loopback};
use crate::targets::{START_TIMEOUT, Target};
use crate::workspace::Workspace;

/// nginx from Debian's package.
const NGINX_BINARY: &str = "/usr/sbin/nginx";
/// Idle upstream connections each worker keeps open.
const UPSTREAM_KEEPALIVE: usize = 256;
/// A path that nginx serves itself, to tell when it is ready.
const READY_PATH: &str = "/bench-ready";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConn,
}

impl Balance {
    pub fn target_name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "nginx",
            Balance::LeastConn => "nginx-least-conn",
        }
    }
}

/// Returns why nginx cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    (!Path::new(NGINX_BINARY).is_file())
        .then(|| format!("{NGINX_BINARY} not found; run scripts/bench-setup.sh"))
}

/// Starts nginx balancing over `upstreams` and waits until it responds.
pub async fn start(
    workspace: &Workspace,
    upstreams: &[SocketAddr],
    balance: Balance,
) -> Result<Target, BenchError> {
    let name = balance.target_name();
    let prefix = workspace.file(name);
    let temp = prefix.join("temp");
    std::fs::create_dir_all(&temp)
        .map_err(|e| BenchError::io(format!("failed to create {}", temp.display()), e))?;

    let port = free_port()?;
    let config = render_config(&prefix, port, upstreams, balance);
    let config_path = prefix.join("nginx.conf");
    std::fs::write(&config_path, config)
        .map_err(|e| BenchError::io(format!("failed to write {}", config_path.display()), e))?;

    let mut command = Command::new(NGINX_BINARY);
    command
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&config_path)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .args(["-g", "daemon off;"]);
    let mut process = ChildProcess::spawn(name, command, &workspace.file(&format!("{name}.log")))?;

    let addr = loopback(port);
    process
        .wait_ready(START_TIMEOUT, || async move {
            get_json(addr, READY_PATH).await.map(|_| ())
        })
        .await?;
    Ok(Target {
        name: name.to_owned(),
        addr,
        monitored: Some(process.pid()),
        _processes: vec![process],
    })
}

/// Renders the whole configuration, with every path under `prefix`.
pub fn render_config(
    prefix: &Path,
    port: u16,
    upstreams: &[SocketAddr],
    balance: Balance,
) -> String {
    let temp = prefix.join("temp");
    let temp_path = |name: &str| -> PathBuf { temp.join(name) };
    let method = match balance {
        Balance::RoundRobin => "",
        Balance::LeastConn => "        least_conn;\n",
    };
    let servers: String = upstreams
        .iter()
        .map(|addr| format!("        server {addr} max_fails=0;\n"))
        .collect();

    format!(
        r#"worker_processes auto;
pid {pid};

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};

    upstream simulators {{
{method}{servers}        keepalive {UPSTREAM_KEEPALIVE};
    }}

    server {{
        listen 127.0.0.1:{port};

        location = {READY_PATH} {{
            default_type application/json;
            return 200 '{{}}';
        }}

        location / {{
            proxy_pass http://simulators;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"#,
        pid = prefix.join("nginx.pid").display(),
        body = temp_path("body").display(),
        proxy = temp_path("proxy").display(),
        fastcgi = temp_path("fastcgi").display(),
        uwsgi = temp_path("uwsgi").display(),
        scgi = temp_path("scgi").display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::http::{CHAT_PATH, chat_body, post_once};
    use crate::loadgen::test_server::TestServer;
    use std::time::Duration;

    fn addrs() -> Vec<SocketAddr> {
        vec![loopback(9001), loopback(9002)]
    }

    #[test]
    fn config_lists_every_upstream() {
        let config = render_config(Path::new("/tmp/x"), 8080, &addrs(), Balance::RoundRobin);
        assert!(config.contains("server 127.0.0.1:9001 max_fails=0;"));
        assert!(config.contains("server 127.0.0.1:9002 max_fails=0;"));
        assert!(config.contains("listen 127.0.0.1:8080;"));
        assert!(!config.contains("least_conn"));
    }

    #[test]
    fn config_keeps_upstream_connections_alive() {
        let config = render_config(Path::new("/tmp/x"), 8080, &addrs(), Balance::RoundRobin);
        assert!(config.contains("proxy_http_version 1.1;"));
        assert!(config.contains("proxy_set_header Connection \"\";"));
        assert!(config.contains("keepalive 256;"));
        assert!(config.contains("proxy_buffering off;"));
    }

    #[test]
    fn least_conn_config() {
        let config = render_config(Path::new("/tmp/x"), 8080, &addrs(), Balance::LeastConn);
        assert!(config.contains("least_conn;"));
    }

    #[tokio::test]
    async fn nginx_proxies_to_a_test_server() {
        if let Some(reason) = unavailable() {
            eprintln!("skipped: {reason}");
            return;
        }
        let server = TestServer::start(Duration::ZERO).await;
        let workspace = Workspace::locate().unwrap();

        let target = start(&workspace, &[server.addr()], Balance::LeastConn)
            .await
            .unwrap();
        let body = post_once(target.addr, CHAT_PATH, chat_body("m", 2, false))
            .await
            .unwrap();

        assert!(String::from_utf8_lossy(&body).contains("choices"));
        assert!(server.connections() >= 1);
    }
}
