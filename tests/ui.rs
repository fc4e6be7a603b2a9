//! The dashboard end to end: `up --ui` on a builtin ensemble, the page in headless Chromium
//! (Debian's package, driven over the DevTools protocol): the status table agrees with
//! `status --json`, the znode browser creates, sets and deletes (each after a confirmation,
//! checked with `zkherd shell`), and the kill button on the leader leads to a new leader on
//! the page and in the timeline. A screenshot is kept in target/tmp/ui-dashboard.png.
//! The JSON API's guards (Host, the header POSTs need) are checked without a browser.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use headless_chrome::{Browser, LaunchOptions, Tab};

fn chromium() -> Option<&'static str> {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}

/// The dashboard's address, as the supervisor wrote it.
fn dashboard_url(c: &Cluster) -> String {
    let url = std::fs::read_to_string(c.dir().join("ui.url")).expect("ui.url written by up --ui");
    url.trim().to_string()
}

/// A raw HTTP exchange: the status code and the body.
fn http(port: u16, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// Evaluate `js` in the page until it gives a truthy value; that value, or a panic naming
/// `what` after `timeout`.
fn wait_js(tab: &Tab, js: &str, what: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = tab.evaluate(js, false) {
            if let Some(v) = r.value {
                let truthy = match &v {
                    serde_json::Value::Null => false,
                    serde_json::Value::Bool(b) => *b,
                    serde_json::Value::String(s) => !s.is_empty(),
                    serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
                    _ => true,
                };
                if truthy {
                    return v;
                }
            }
        }
        if Instant::now() > deadline {
            let body = tab
                .evaluate("document.body.innerText", false)
                .ok()
                .and_then(|r| r.value)
                .unwrap_or_default();
            panic!("the page never showed {what} within {timeout:?}; it shows:\n{body}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn click(tab: &Tab, selector: &str) {
    tab.wait_for_element_with_custom_timeout(selector, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("no {selector} on the page: {e}"))
        .click()
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}

/// Click the confirmation dialog's button (`yes` or `no`) once it is open.
fn confirm(tab: &Tab, answer: &str) {
    wait_js(
        tab,
        "document.getElementById('confirm').classList.contains('open')",
        "the confirmation dialog",
        Duration::from_secs(10),
    );
    click(tab, &format!("#confirm-{answer}"));
    wait_js(
        tab,
        "!document.getElementById('confirm').classList.contains('open')",
        "the dialog closing",
        Duration::from_secs(10),
    );
}

/// Wait until the znode browser lists `path` (or, with `present` false, no longer does).
fn in_tree(tab: &Tab, path: &str, present: bool) {
    let js = format!(
        "(document.querySelector('#tree span[data-path=\"{path}\"]') !== null) === {present}"
    );
    let what = format!(
        "{path} {} the tree",
        if present { "in" } else { "gone from" }
    );
    wait_js(tab, &js, &what, Duration::from_secs(20));
}

fn shell_get(c: &Cluster, path: &str) -> (i32, String) {
    let o = c.run(&["shell", "get", path], 30);
    (o.status.code().unwrap_or(-1), stdout(&o))
}

#[test]
fn dashboard_api_guards() {
    let c = Cluster::new(1);
    let up = c.up(&["--backend", "builtin", "--ui", "0"]);
    assert!(up.status.success(), "{}", stderr(&up));
    let url = dashboard_url(&c);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        stdout(&up).contains(&format!("dashboard: {url}")),
        "{}",
        stdout(&up)
    );
    let port = port_of(&url);
    let host = format!("127.0.0.1:{port}");

    // Another Host (DNS rebinding) is refused; so is a POST without the page's header.
    let (code, body) = http(
        port,
        "GET /api/status HTTP/1.1\r\nHost: evil.example:80\r\n\r\n",
    );
    assert_eq!(code, 403, "{body}");
    let post = |path: &str, body: &str, header: bool| {
        http(
            port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{body}",
                if header { "X-Zkherd-Ui: 1\r\n" } else { "" },
                body.len()
            ),
        )
    };
    let (code, _) = post("/api/znode/create", r#"{"path":"/nope"}"#, false);
    assert_eq!(code, 403);
    assert_eq!(
        shell_get(&c, "/nope").0,
        1,
        "the refused POST created nothing"
    );
    let (code, body) = post("/api/znode/create", r#"{"path":"/api1","data":"x"}"#, true);
    assert_eq!(code, 200, "{body}");
    let (code, body) = post("/api/znode/create", r#"{"path":"/api1","data":"x"}"#, true);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("NodeExists"), "{body}");
    let (code, body) = post("/api/znode/create", "not json", true);
    assert_eq!(code, 400, "{body}");
    let (code, body) = post("/api/fault", r#"{"action":"explode","node":1}"#, true);
    assert_eq!(code, 400, "{body}");
    let (code, body) = post("/api/fault", r#"{"action":"kill","node":9}"#, true);
    assert_eq!(code, 409, "{body}");
    // No link proxies on this cluster: network faults are refused with the way to get them.
    let (code, body) = post("/api/net", r#"{"isolate":1}"#, true);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("--net faults"), "{body}");

    let get = |path: &str| {
        http(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        )
    };
    let (code, body) = get("/api/znode?path=/missing");
    assert_eq!(code, 404, "{body}");
    let (code, body) = get("/api/logs?node=1&lines=5");
    assert_eq!(code, 200, "{body}");
    let logs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(logs["lines"].as_array().unwrap().len() <= 5, "{body}");
    assert!(!body.contains("\\u001b"), "colour codes in the log: {body}");
    // A wide znode: the first 500 children by name, each with its own child count.
    let mut script = String::from("create /many\n");
    for i in 0..503 {
        script.push_str(&format!("create /many/c{i:03}\n"));
    }
    script.push_str("create /many/c000/grandchild\n");
    let (out, rc) = run_with_stdin(&mut c.cmd(&["shell"]), &script, Duration::from_secs(60));
    assert_eq!(rc, 0, "{out}");
    let (code, body) = get("/api/znode?path=/many");
    assert_eq!(code, 200, "{body}");
    let z: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(z["children_total"], 503);
    let kids = z["children"].as_array().unwrap();
    assert_eq!(kids.len(), 500);
    assert_eq!(kids[0], serde_json::json!({"name": "c000", "children": 1}));
    assert_eq!(kids[499]["name"], "c499");
    assert_eq!(kids[499]["children"], 0);
    let (code, page) = get("/");
    assert_eq!(code, 200);
    assert!(page.contains("<title>zkherd</title>"));

    // `down` stops the dashboard with everything else.
    let down = c.run(&["down"], 60);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "dashboard still listening"
    );
    assert!(!c.dir().join("ui.url").exists());
}

#[test]
fn dashboard_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        tool_available(
            "dashboard_in_headless_chromium",
            "chromium",
            false,
            "`apt-get install chromium`",
        );
        return;
    };
    let c = Cluster::new(3);
    // The link proxies on a range found free (the default, quorum + 10000, can fall among
    // the kernel's ephemeral ports).
    std::fs::write(
        c.tmp.path().join("zkherd.toml"),
        format!("[network]\nproxy_base = {}\n", free_proxy_base()),
    )
    .unwrap();
    let up = c.up(&["--backend", "builtin", "--ui", "0", "--net", "faults"]);
    assert!(up.status.success(), "{}{}", stdout(&up), stderr(&up));
    let url = dashboard_url(&c);

    let profile = c.tmp.path().join("chromium-profile");
    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chrome.into()))
            .sandbox(false)
            .window_size(Some((1400, 1100)))
            .user_data_dir(Some(profile))
            .idle_browser_timeout(Duration::from_secs(180))
            .build()
            .unwrap(),
    )
    .expect("launch headless chromium");
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(30));
    tab.navigate_to(&url)
        .unwrap()
        .wait_until_navigated()
        .unwrap();

    // Status: three rows, the leader the one `status --json` names.
    let (status, _) = c.status_json();
    let leader = status["leader"].as_u64().expect("a leader");
    let shown = wait_js(
        &tab,
        "(() => { const r = document.querySelector('#status tr[data-role=leader]'); \
              return r ? r.dataset.node : ''; })()",
        "a leader row",
        Duration::from_secs(20),
    );
    assert_eq!(shown, leader.to_string());
    let rows = wait_js(
        &tab,
        "document.querySelectorAll('#status tbody tr').length",
        "node rows",
        Duration::from_secs(10),
    );
    assert_eq!(rows, 3);
    let verdict = wait_js(
        &tab,
        "document.getElementById('verdict').textContent === 'healthy' ? 'healthy' : ''",
        "verdict healthy",
        Duration::from_secs(20),
    );
    assert_eq!(verdict, "healthy");
    for n in &status["nodes"].as_array().unwrap()[..] {
        let pid = wait_js(
            &tab,
            &format!(
                "(document.querySelector('#status tr[data-node=\"{}\"] td[data-field=pid]') || {{}}).textContent",
                n["id"]
            ),
            "a pid",
            Duration::from_secs(10),
        );
        assert_eq!(pid, n["pid"].to_string(), "node {}", n["id"]);
    }
    // The logs panel shows node 1's log.
    wait_js(
        &tab,
        "document.getElementById('logs').textContent.includes('serving on')",
        "node 1's log",
        Duration::from_secs(20),
    );

    // The tree: create a child of / (after confirming), see it listed, read it back.
    in_tree(&tab, "/zookeeper", true);
    tab.evaluate(
        "document.getElementById('new-name').value = 'fromui'; \
         document.getElementById('new-data').value = 'hello from chromium'; true",
        false,
    )
    .unwrap();
    click(&tab, "#create-btn");
    // Cancelling creates nothing.
    confirm(&tab, "no");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(shell_get(&c, "/fromui").0, 1, "cancelled, yet created");
    click(&tab, "#create-btn");
    confirm(&tab, "yes");
    in_tree(&tab, "/fromui", true);
    assert_eq!(
        shell_get(&c, "/fromui"),
        (0, "hello from chromium\n".into())
    );
    click(&tab, "#tree span[data-path=\"/fromui\"]");
    wait_js(
        &tab,
        "document.getElementById('znode-data').value === 'hello from chromium'",
        "the data of /fromui",
        Duration::from_secs(20),
    );
    let stat = wait_js(
        &tab,
        "document.getElementById('znode-stat').textContent",
        "the stat",
        Duration::from_secs(5),
    );
    assert!(stat.as_str().unwrap().contains("19 bytes"), "{stat}");

    // Set: edit, confirm, and the ensemble has the new data.
    tab.evaluate(
        "document.getElementById('znode-data').value = 'changed in the browser'; true",
        false,
    )
    .unwrap();
    click(&tab, "#set-btn");
    confirm(&tab, "yes");
    let got = eventually(Duration::from_secs(20), || {
        let (rc, out) = shell_get(&c, "/fromui");
        (rc == 0 && out == "changed in the browser\n").then_some(out)
    });
    assert!(
        got.is_some(),
        "set from the page did not reach the ensemble"
    );
    wait_js(
        &tab,
        "document.getElementById('znode-stat').textContent.includes('version 1')",
        "version 1 after the set",
        Duration::from_secs(20),
    );

    // Delete: confirm, gone from the ensemble and from the tree.
    click(&tab, "#delete-btn");
    confirm(&tab, "yes");
    in_tree(&tab, "/fromui", false);
    assert_eq!(shell_get(&c, "/fromui").0, 1, "still there after delete");

    // Network: isolate a follower from its row, see the cut in the page and in `net show`,
    // then heal.
    let follower = (1..=3u64).find(|id| *id != leader).unwrap();
    click(
        &tab,
        &format!("#status tr[data-node=\"{follower}\"] button[data-action=isolate]"),
    );
    confirm(&tab, "yes");
    wait_js(
        &tab,
        &format!("document.getElementById('links').textContent.includes('{follower}<->') || document.getElementById('links').textContent.includes('<->{follower}')"),
        "the isolated follower's cut links",
        Duration::from_secs(20),
    );
    let shown = stdout(&c.run(&["net", "show"], 30));
    assert!(shown.contains("cut"), "{shown}");
    click(&tab, "#heal-btn");
    wait_js(
        &tab,
        "document.getElementById('links').textContent === 'every link is clear'",
        "every link clear after heal",
        Duration::from_secs(20),
    );
    assert!(stdout(&c.run(&["net", "show"], 30)).contains("every link is clear"));

    // Fault: kill the leader from its row; the page shows another leader, the timeline
    // records it, and the supervisor restarted the killed node.
    let old_pid = status["nodes"][(leader - 1) as usize]["pid"]
        .as_i64()
        .unwrap() as i32;
    click(
        &tab,
        &format!("#status tr[data-node=\"{leader}\"] button[data-action=kill]"),
    );
    confirm(&tab, "yes");
    let new_leader = wait_js(
        &tab,
        &format!(
            "(() => {{ const r = document.querySelector('#status tr[data-role=leader]'); \
                 return r && r.dataset.node !== '{leader}' ? r.dataset.node : ''; }})()"
        ),
        "a new leader after the kill",
        Duration::from_secs(30),
    );
    let new_leader: u64 = new_leader.as_str().unwrap().parse().unwrap();
    assert_ne!(new_leader, leader);
    wait_js(
        &tab,
        &format!(
            "[...document.querySelectorAll('#timeline li')].some(li => li.dataset.leader === '{new_leader}')"
        ),
        "the new leader in the timeline",
        Duration::from_secs(20),
    );
    wait_js(
        &tab,
        &format!(
            "(document.querySelector('#status tr[data-node=\"{leader}\"] td[data-field=restarts]') || {{}}).textContent === '1'"
        ),
        "one restart of the killed node",
        Duration::from_secs(30),
    );
    assert!(
        !alive(old_pid),
        "the killed leader's process {old_pid} lives"
    );
    let message = wait_js(
        &tab,
        "document.getElementById('message').textContent",
        "the fault's message",
        Duration::from_secs(10),
    );
    assert!(message.as_str().unwrap().contains("kill"), "{message}");

    // Keep what the page looked like at the end.
    let png = tab
        .capture_screenshot(
            headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption::Png,
            None,
            None,
            true,
        )
        .unwrap();
    let artifact = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-dashboard.png");
    std::fs::write(&artifact, &png).unwrap();
    assert!(png.len() > 10_000, "screenshot of {} bytes", png.len());
    eprintln!("dashboard screenshot: {}", artifact.display());
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `zkherd ui` beside a running cluster (no `--ui` on `up`): it serves the same API, on
/// Apache too, and Ctrl-C ends it and removes `ui.url`.
#[test]
fn zkherd_ui_command_on_both_backends() {
    let mut backends = vec!["builtin"];
    if apache_available("zkherd_ui_command_on_both_backends") {
        backends.push("apache");
    }
    for backend in backends {
        let c = Cluster::new(3);
        let up = c.up(&["--backend", backend]);
        assert!(up.status.success(), "{backend}: {}", stderr(&up));
        let mut child = KillOnDrop(
            c.cmd(&["ui", "--port", "0"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let child = &mut child.0;
        let mut first = String::new();
        {
            use std::io::BufRead;
            let out = child.stdout.as_mut().unwrap();
            let mut reader = std::io::BufReader::new(out);
            // Bounded: the child prints this line at once or dies (then read returns 0).
            reader.read_line(&mut first).unwrap();
        }
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("{backend}: no URL in {first:?}"))
            .to_string();
        let port = port_of(&url);
        let host = format!("127.0.0.1:{port}");
        let get = |path: &str| {
            http(
                port,
                &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            )
        };
        let status = eventually(Duration::from_secs(20), || {
            let (code, body) = get("/api/status");
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (code == 200 && v["leader"].is_u64()).then_some(v)
        })
        .unwrap_or_else(|| panic!("{backend}: no leader in /api/status"));
        assert_eq!(status["backend"], backend);
        assert_eq!(status["nodes"].as_array().unwrap().len(), 3);
        let (code, body) = get("/api/znode?path=/zookeeper");
        assert_eq!(code, 200, "{backend}: {body}");
        assert!(
            body.contains("\"config\"") && body.contains("\"quota\""),
            "{body}"
        );
        let (code, body) = get("/api/logs?node=2&lines=20");
        assert_eq!(code, 200, "{backend}: {body}");
        let logs: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            !logs["lines"].as_array().unwrap().is_empty(),
            "{backend}: empty log"
        );
        assert!(c.dir().join("ui.url").exists());

        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let ended = eventually(Duration::from_secs(10), || child.try_wait().unwrap());
        let status = ended.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("{backend}: zkherd ui did not end on SIGINT")
        });
        assert!(status.success(), "{backend}: {status:?}");
        assert!(
            !c.dir().join("ui.url").exists(),
            "{backend}: ui.url left behind"
        );
    }
}
