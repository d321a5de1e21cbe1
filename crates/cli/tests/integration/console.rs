//! ddm's page in Cockpit (`packaging/cockpit`), in a real Cockpit and a
//! real browser: `cockpit-ws` beside the real service in the router's
//! namespace (`ddm_lab::cockpit`), people logged in with PAM as users
//! of the test's admin and monitor groups and of neither, and a headless
//! Chromium driven over WebDriver (chromedriver), in the same namespace.

use crate::support::*;
use ddm_lab::accounts::Accounts;
use ddm_lab::cockpit::{Cockpit, PORT};
use ddm_lab::process::Process;
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PASSWORD: &str = "Console-test-7";
const DRIVER_PORT: u16 = 9515;
/// The shell's frame for ddm's page.
const FRAME: &str = "iframe[name='cockpit1:localhost/ddm']";
/// A change in the namespace shows on the page within this.
const LIVE: Duration = Duration::from_secs(1);

fn page_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/cockpit")
}

/// axe-core, fetched by scripts/install-test-tools.
fn axe_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-assets/axe-core-4.10.3.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: scripts/install-test-tools fetches axe-core (./run-tests runs it)",
            path.display()
        )
    })
}

/// Users in the test's admin group, monitor group and neither, and the
/// service's access policy naming those groups.
struct People {
    _accounts: Accounts,
    admin: String,
    monitor: String,
    stranger: String,
    policy: String,
}

fn people() -> People {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = format!("{}{n}", std::process::id() % 100_000);
    let (admins, monitors) = (format!("ddmc{tag}adm"), format!("ddmc{tag}mon"));
    let mut accounts = Accounts::new();
    accounts.group(&admins);
    accounts.group(&monitors);
    let [admin, monitor, stranger] = ["a", "m", "s"].map(|who| format!("ddmc{tag}{who}"));
    accounts.person(&admin, &[&admins], PASSWORD);
    accounts.person(&monitor, &[&monitors], PASSWORD);
    accounts.person(&stranger, &[], PASSWORD);
    People {
        _accounts: accounts,
        policy: format!(
            "[access]\nadmin_groups = [\"{admins}\"]\nmonitor_groups = [\"{monitors}\"]\n"
        ),
        admin,
        monitor,
        stranger,
    }
}

/// A headless Chromium in `netns`, driven through chromedriver.
struct Browser<'a> {
    netns: &'a Netns,
    runtime: tokio::runtime::Runtime,
    client: Client,
    _driver: Process,
    _profile: tempfile::TempDir,
}

impl<'a> Browser<'a> {
    fn open(netns: &'a Netns) -> Browser<'a> {
        let driver = netns
            .command("chromedriver")
            .arg(format!("--port={DRIVER_PORT}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let driver = Process(driver);
        ddm_lab::require("chromium");
        wait_until("chromedriver answers", || {
            netns.enter(|| std::net::TcpStream::connect(("127.0.0.1", DRIVER_PORT)).is_ok())
        });
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = netns.enter(|| {
            runtime.block_on(async {
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
                    .await
                    .expect("a browser session")
            })
        });
        Browser {
            netns,
            runtime,
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Runs `future` (the driver's sockets are in the namespace).
    fn block<T>(&self, future: impl Future<Output = T>) -> T {
        self.netns.enter(|| self.runtime.block_on(future))
    }

    /// Logs `user` in on Cockpit's login page and opens ddm's page, in
    /// the shell's frame for it.
    fn log_in_and_open(&self, user: &str) {
        let base = format!("http://127.0.0.1:{PORT}");
        self.block(async {
            let c = &self.client;
            c.goto(&format!("{base}/")).await.unwrap();
            c.wait()
                .for_element(Locator::Id("login-user-input"))
                .await
                .unwrap()
                .send_keys(user)
                .await
                .unwrap();
            c.find(Locator::Id("login-password-input"))
                .await
                .unwrap()
                .send_keys(PASSWORD)
                .await
                .unwrap();
            c.find(Locator::Id("login-button"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            // The shell, logged in, then ddm's page in it.
            c.wait()
                .at_most(PATIENCE)
                .for_element(Locator::Css("#hosts-sel, #nav-system"))
                .await
                .expect("Cockpit's shell after the login");
        });
        // Cockpit's login page asks whether the browser is logged in before
        // anyone typed a password: the console reports that 401. The
        // page's own console starts here.
        let before = self.console_errors();
        assert!(
            before.iter().all(|e| e.contains("/cockpit/login - ")),
            "{before:#?}"
        );
        self.block(self.client.goto(&format!("{base}/ddm")))
            .unwrap();
        // The shell may make the page's frame again as it settles: the
        // frame is looked for afresh until the page in it has asked the
        // service.
        wait_until("the page has asked the service", || {
            self.block(async {
                let c = &self.client;
                c.enter_parent_frame().await.unwrap();
                let Ok(frame) = c.find(Locator::Css(FRAME)).await else {
                    return false;
                };
                frame.enter_frame().await.is_ok()
                    && c.execute(
                        "const page = document.getElementById('ddm'); \
                         return !!page && page.getAttribute('aria-busy') === 'false';",
                        vec![],
                    )
                    .await
                    .is_ok_and(|ready| ready == json!(true))
            })
        });
    }

    /// Into the page's frame again, from the shell.
    async fn enter_page(&self) {
        let frame = self.client.find(Locator::Css(FRAME)).await.unwrap();
        frame.enter_frame().await.unwrap();
    }

    /// What `script` returns (a function body: `return ...`).
    fn js(&self, script: &str) -> Value {
        self.block(self.client.execute(script, vec![]))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until the expression `what` is truthy; its value.
    fn wait_for(&self, what: &str, expression: &str) -> Value {
        let script = format!("return ({expression}) || null;");
        let mut value = Value::Null;
        wait_until(what, || {
            value = self.js(&script);
            !value.is_null() && value != json!(false)
        });
        value
    }

    /// How long until `expression` is truthy, looking every few ms.
    fn time_until(&self, expression: &str, limit: Duration) -> Option<Duration> {
        let script = format!("return !!({expression});");
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.js(&script) == json!(true) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn click(&self, css: &str) {
        self.block(async {
            self.client
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"))
                .click()
                .await
                .unwrap();
        });
    }

    /// Moves the mouse over the piece `piece` (a CSS selector) of
    /// `interface`'s timeline: to its bar, at the piece's offset from the
    /// bar's centre (chromedriver finds the centre of an HTML element, not
    /// of an SVG shape).
    fn hover_piece(&self, interface: &str, piece: &str) {
        let bar = format!(".ddm-timeline[data-interface='{interface}'] svg");
        let offset = self.js(&format!(
            "document.querySelector(\"{bar}\").scrollIntoView({{ block: 'center' }}); \
             const bar = document.querySelector(\"{bar}\").getBoundingClientRect(); \
             const piece = document.querySelector(\"{bar} {piece}\").getBoundingClientRect(); \
             return (piece.left + piece.width / 2) - (bar.left + bar.width / 2);"
        ));
        self.block(async {
            let element = self.client.find(Locator::Css(&bar)).await.unwrap();
            let actions = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
                element,
                duration: None,
                x: offset.as_f64().unwrap(),
                y: 0.0,
            });
            self.client.perform_actions(actions).await.unwrap();
        });
    }

    /// Presses Tab `count` times; what had the focus after each.
    fn tab_through(&self, count: usize) -> Vec<String> {
        (0..count)
            .map(|_| {
                self.block(async {
                    let keys = fantoccini::actions::KeyActions::new("keys".into())
                        .then(fantoccini::actions::KeyAction::Down { value: '\u{E004}' })
                        .then(fantoccini::actions::KeyAction::Up { value: '\u{E004}' });
                    self.client.perform_actions(keys).await.unwrap();
                });
                self.js("const e = document.activeElement; \
                     return (e.getAttribute('aria-label') || e.textContent || e.tagName).trim();")
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// The browser console's errors so far (page and shell). A resource
    /// the browser dropped because the host's links changed
    /// (`net::ERR_NETWORK_CHANGED`: the other tests make and delete links
    /// while it runs) is the machine's doing, not the page's.
    fn console_errors(&self) -> Vec<String> {
        let Value::Array(entries) = self.block(self.client.issue_cmd(BrowserLog)).unwrap() else {
            panic!("the browser log");
        };
        entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .filter(|message| !message.contains("net::ERR_NETWORK_CHANGED"))
            .collect()
    }

    /// axe-core's WCAG 2.1 A and AA violations on the page, each as its
    /// rule, what it says and where.
    fn accessibility_violations(&self) -> Vec<String> {
        if self.js("return typeof axe !== 'undefined';") != json!(true) {
            self.js(&format!("{}\nwindow.axe = axe; return true;", axe_source()));
        }
        let found = self
            .block(self.client.execute_async(
                "const done = arguments[arguments.length - 1]; \
                 axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }) \
                    .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ': ' + \
                        v.nodes.map(n => n.target.join(' ') + ' (' + \
                            n.any.concat(n.all).map(c => c.message).join('; ') + ')').join(', '))), \
                          e => done(['axe failed: ' + e]));",
                vec![],
            ))
            .unwrap();
        serde_json::from_value(found).unwrap()
    }

    /// Cockpit's appearance, as its menu sets it (the shell's stored
    /// style, which every frame follows).
    fn set_style(&self, style: &str) {
        self.block(async {
            self.client.enter_parent_frame().await.unwrap();
            self.client
                .execute(
                    "localStorage.setItem('shell:style', arguments[0]); \
                     window.dispatchEvent(new CustomEvent('cockpit-style', { detail: { style: arguments[0] } })); \
                     for (const f of document.querySelectorAll('iframe')) \
                        f.contentWindow.dispatchEvent(new CustomEvent('cockpit-style', { detail: { style: arguments[0] } }));",
                    vec![json!(style)],
                )
                .await
                .unwrap();
            self.enter_page().await;
        });
    }

    fn resize(&self, width: u32, height: u32) {
        self.block(self.client.set_window_size(width, height))
            .unwrap();
    }

    fn screenshot(&self) -> Vec<u8> {
        self.block(async {
            self.client.enter_parent_frame().await.unwrap();
            let png = self.client.screenshot().await.unwrap();
            self.enter_page().await;
            png
        })
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.block(client.close());
    }
}

/// chromedriver's browser log (what the console printed).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// The rows of the page's interface table: name, state, dial, last error.
fn rows(browser: &Browser) -> Vec<(String, String, String, String)> {
    let rows = browser.js(
        "return [...document.querySelectorAll('#ddm-interfaces tbody tr[data-interface]')].map(r => [ \
            r.dataset.interface, r.querySelector('.ddm-state').dataset.state, \
            r.children[3].textContent, \
            (r.querySelector('.ddm-error-name') || { textContent: '-' }).textContent ]);",
    );
    serde_json::from_value(rows).unwrap()
}

/// What `ddm interfaces --json` says.
fn listed_json(service: &Service) -> Vec<Value> {
    serde_json::from_str(&stdout_of(&mut service.ddm(&["interfaces", "--json"]))).unwrap()
}

/// What `ddm interfaces --json` says, in the page's terms.
fn listed(service: &Service) -> Vec<(String, String, String, String)> {
    listed_json(service)
        .iter()
        .map(|i| {
            let dial = i["dial"].as_str().unwrap();
            let error = match i["last_error"].as_u64().unwrap() {
                0 => "-".to_owned(),
                code => format!("{} ({code})", i["last_error_name"].as_str().unwrap()),
            };
            (
                i["name"].as_str().unwrap().to_owned(),
                i["state"].as_str().unwrap().to_owned(),
                if dial.is_empty() {
                    "-".into()
                } else {
                    dial.into()
                },
                error,
            )
        })
        .collect()
}

fn state_is(name: &str, state: &str) -> String {
    format!(
        "(document.querySelector('#ddm-interfaces tr[data-interface=\"{name}\"] .ddm-state') || {{}}).dataset?.state === '{state}'"
    )
}

/// The newest alert's kind and text, once there are `count`.
fn alert(browser: &Browser, count: usize) -> (String, String) {
    let found = browser.wait_for(
        &format!("alert {count}"),
        &format!(
            "document.querySelectorAll('.ddm-alert').length >= {count} && \
             [document.querySelector('.ddm-alert').dataset.kind, document.querySelector('.ddm-alert').textContent]"
        ),
    );
    serde_json::from_value(found).unwrap()
}

const FAST: &str = "interval_ms = 200\ntimeout_ms = 400\ndown_after = 3\nup_after = 3\n";

/// A router with a kernel link (eth1), two watched uplinks in a group
/// and a manual interface (branch, on d0), its service under `policy`.
fn router(policy: &str) -> Lab {
    let mut lab = Lab::new();
    lab.far.ip(&["link", "set", "lo", "up"]);
    lab.far.ip(&["addr", "add", "198.18.0.1/32", "dev", "lo"]);
    for n in 1..=2 {
        ddm_lab::uplinks::add(&lab.router, &lab.far, n);
    }
    lab.add_link("d0");
    let watched = |name: &str, link: &str| {
        format!("[[interface]]\nname = \"{name}\"\nlink = \"{link}\"\nhealth = \"isp\"\n")
    };
    let config = format!(
        "{policy}{}{}[[interface]]\nname = \"branch\"\nlink = \"d0\"\ndial = \"manual\"\n\
         connect = [\"ip\", \"link\", \"set\", \"d0\", \"up\"]\n\
         disconnect = [\"ip\", \"link\", \"set\", \"d0\", \"down\"]\nconnect_timeout_secs = 3\nredial_attempts = 0\n\
         [health.isp]\ntargets = [\"198.18.0.1\"]\n{FAST}\
         [[group]]\nname = \"internet\"\nroutes = [\"198.18.0.0/24\"]\nmembers = [\"isp1\", \"isp2\"]\n",
        watched("isp1", "wan1"),
        watched("isp2", "wan2"),
    );
    std::fs::write(lab.service.config_path(), config).unwrap();
    lab.service.restart_with_config();
    lab.add_connected_link("eth1");
    lab.wait_for_state("isp1", mprapi::ConnectionState::Connected);
    lab
}

#[test]
fn an_admin_watches_the_router_live_and_connects_and_disconnects() {
    require_root();
    let people = people();
    let mut lab = router(&people.policy);
    let _cockpit = Cockpit::start(&lab.router, &lab.service, &page_dir());
    let browser = Browser::open(&lab.router);
    browser.log_in_and_open(&people.admin);

    // The table is what `ddm interfaces` says.
    wait_until("the page's table is ddm interfaces'", || {
        rows(&browser) == listed(&lab.service)
    });
    browser.wait_for(
        "the admin's buttons",
        "document.querySelector('button[data-action=\"connect\"]')",
    );
    assert_eq!(
        browser.js("return document.getElementById('ddm-reload').hidden;"),
        json!(false)
    );

    // A link flapped in the namespace changes on the page within a second.
    lab.set_up("eth1", false);
    let down = browser.time_until(&state_is("eth1", "disconnected"), PATIENCE);
    std::thread::sleep(Duration::from_millis(1500));
    lab.set_up("eth1", true);
    let up = browser.time_until(&state_is("eth1", "connected"), PATIENCE);
    assert!(
        down.is_some_and(|d| d <= LIVE),
        "eth1 down shown after {down:?}"
    );
    assert!(up.is_some_and(|d| d <= LIVE), "eth1 up shown after {up:?}");

    // Connect and disconnect a declared interface; each shows its outcome.
    browser.click("tr[data-interface='branch'] button[data-action='connect']");
    let (kind, text) = alert(&browser, 1);
    assert_eq!(kind, "success", "{text}");
    assert!(
        text.contains("Connect branch") && text.contains("connected"),
        "{text}"
    );
    browser.wait_for("branch connected", &state_is("branch", "connected"));
    browser.click("tr[data-interface='branch'] button[data-action='disconnect']");
    let (kind, text) = alert(&browser, 2);
    assert_eq!(kind, "success", "{text}");
    browser.wait_for("branch disconnected", &state_is("branch", "disconnected"));
    // Disable and enable: the service says so, and the buttons follow.
    browser.click("tr[data-interface='branch'] button[data-action='disable']");
    assert_eq!(alert(&browser, 3).0, "success");
    browser.wait_for(
        "branch disabled, with an Enable button",
        "document.querySelector(\"tr[data-interface='branch'] button[data-action='enable']\") && \
         !document.querySelector(\"tr[data-interface='branch'] button[data-action='connect']\") && \
         document.querySelector(\"tr[data-interface='branch'] .ddm-state\").textContent.includes('disabled')",
    );
    let listed_enabled = |lab: &Lab| {
        listed_json(&lab.service)
            .into_iter()
            .find(|i| i["name"] == "branch")
            .unwrap()["enabled"]
            .clone()
    };
    assert_eq!(listed_enabled(&lab), json!(false));
    browser.click("tr[data-interface='branch'] button[data-action='enable']");
    assert_eq!(alert(&browser, 4).0, "success");
    browser.wait_for(
        "branch enabled, with a Connect button",
        "document.querySelector(\"tr[data-interface='branch'] button[data-action='connect']\")",
    );
    assert_eq!(listed_enabled(&lab), json!(true));
    // A connect that fails shows the Win32 error by name and text.
    lab.router.delete_link("d0");
    browser.click("tr[data-interface='branch'] button[data-action='connect']");
    let (kind, text) = alert(&browser, 5);
    assert_eq!(kind, "danger", "{text}");
    assert!(
        shows_a_win32_error(&text),
        "no Win32 error by name and text in {text:?}"
    );

    // The history shows the outage made above, and hovering it says when
    // and why.
    browser.wait_for(
        "eth1's outage on its timeline",
        "document.querySelector('.ddm-timeline[data-interface=\"eth1\"] rect[data-state=\"disconnected\"][data-seq]')",
    );
    browser.wait_for(
        "eth1's outage counted",
        "/\\b1 outage\\b/.test(document.querySelector('.ddm-timeline[data-interface=\"eth1\"] .ddm-timeline-figures').textContent)",
    );
    let tip = tooltip(
        &browser,
        "eth1",
        "rect[data-state='disconnected'][data-seq]",
    );
    assert!(
        tip.contains("eth1: disconnected from") && tip.contains("changed at"),
        "{tip}"
    );
    // The stream has no reasons: they come from the journal, a moment later.
    browser.wait_for(
        "the failed attempt's reason",
        "(document.querySelector(\".ddm-timeline[data-interface='branch'] rect[data-state='unreachable'][data-seq]\") || { dataset: {} }).dataset.tip?.includes('reason:')",
    );
    let tip = tooltip(
        &browser,
        "branch",
        "rect[data-state='unreachable'][data-seq]",
    );
    assert!(
        tip.contains("reason:") && tip.contains("last error ERROR_"),
        "{tip}"
    );

    // Health and groups have their figures.
    browser.wait_for(
        "isp1's RTT",
        "/ms$/.test(document.querySelector('#ddm-interfaces tr[data-interface=\"isp1\"]').children[6].textContent)",
    );
    browser.wait_for(
        "isp1's chart",
        "document.querySelector('#ddm-health .ddm-rtt')",
    );
    browser.wait_for(
        "the group's carrier",
        "document.getElementById('ddm-groups').textContent.includes('go through isp1')",
    );

    // Keyboard: the buttons are reached with Tab.
    browser.js("document.activeElement.blur(); window.focus(); return true;");
    let focused = browser.tab_through(20);
    for wanted in [
        "Reload configuration",
        "Last 24 hours",
        "Last 7 days",
        "Disable branch",
    ] {
        assert!(
            focused.iter().any(|f| f == wanted),
            "{wanted} not reached by Tab: {focused:?}"
        );
    }

    // The service restarts: the page recovers by itself, and is live again.
    lab.service.restart();
    lab.set_up("eth1", false);
    browser.wait_for(
        "the page after the restart",
        &state_is("eth1", "disconnected"),
    );
    lab.set_up("eth1", true);
    let up = browser.time_until(&state_is("eth1", "connected"), PATIENCE);
    assert!(
        up.is_some_and(|d| d <= LIVE),
        "after the restart, shown after {up:?}"
    );

    // Accessibility, light and dark, wide and narrow.
    for style in ["light", "dark"] {
        browser.set_style(style);
        browser.wait_for(
            &format!("the {style} theme"),
            &format!(
                "document.documentElement.classList.contains('pf-theme-dark') === {}",
                style == "dark"
            ),
        );
        let violations = browser.accessibility_violations();
        assert!(violations.is_empty(), "{style}: {violations:#?}");
    }
    browser.set_style("light");
    browser.resize(420, 900);
    browser.wait_for(
        "a narrow page without a sideways scroll",
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1",
    );
    assert!(browser.accessibility_violations().is_empty());
    browser.resize(1280, 1000);

    // The screenshot the README shows.
    browser.wait_for(
        "the wide layout",
        "document.documentElement.clientWidth > 900",
    );
    browser.js(
        "document.getElementById('ddm-tooltip').hidden = true; window.scrollTo(0, 0); return true;",
    );
    let png = browser.screenshot();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/cockpit");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("console.png"), &png).unwrap();
    if let Some(path) = std::env::var_os("DDM_CONSOLE_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }

    let errors = browser.console_errors();
    assert!(errors.is_empty(), "the browser's console: {errors:#?}");
}

/// The tooltip of the piece `piece` (a CSS selector) of `interface`'s
/// timeline, pointed at with the mouse.
fn tooltip(browser: &Browser, interface: &str, piece: &str) -> String {
    browser.hover_piece(interface, piece);
    let tip = browser.wait_for(
        &format!("{interface}'s tooltip"),
        &format!(
            "!document.getElementById('ddm-tooltip').hidden && \
             document.getElementById('ddm-tooltip').textContent.trim().startsWith('{interface}:') && \
             document.getElementById('ddm-tooltip').textContent.trim()"
        ),
    );
    tip.as_str().unwrap().to_owned()
}

/// Whether `text` has an `ERROR_NAME (number): text` in it.
fn shows_a_win32_error(text: &str) -> bool {
    text.split("ERROR_").skip(1).any(|rest| {
        let name_end = rest.find(" (").unwrap_or(0);
        let after = &rest[name_end..];
        name_end > 0
            && rest[..name_end]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && after[2..].split_once("): ").is_some_and(|(code, text)| {
                code.chars().all(|c| c.is_ascii_digit()) && !text.trim().is_empty()
            })
    })
}

#[test]
fn a_monitor_sees_no_buttons_and_the_service_come_and_go_and_a_stranger_is_told_why() {
    require_root();
    let people = people();
    let mut lab = router(&people.policy);
    let _cockpit = Cockpit::start(&lab.router, &lab.service, &page_dir());

    let browser = Browser::open(&lab.router);
    browser.log_in_and_open(&people.monitor);
    wait_until("the monitor's table is ddm interfaces'", || {
        rows(&browser) == listed(&lab.service)
    });
    assert_eq!(
        browser.js(
            "return [document.querySelectorAll('button[data-action]').length, \
                     document.getElementById('ddm-reload').hidden, \
                     getComputedStyle(document.querySelector('th.ddm-admin-only')).display];"
        ),
        json!([0, true, "none"]),
        "no button that would only be refused"
    );
    // The service goes away: the page says so, and comes back with it.
    lab.service.kill();
    browser.wait_for(
        "the page says the service is not answering",
        "!document.getElementById('ddm-away').hidden && document.getElementById('ddm-content').hidden",
    );
    lab.service.restart();
    browser.wait_for(
        "the page back with the service",
        "document.getElementById('ddm-away').hidden && !document.getElementById('ddm-content').hidden",
    );
    wait_until("the monitor's table after the restart", || {
        rows(&browser) == listed(&lab.service)
    });
    assert!(browser.console_errors().is_empty());
    drop(browser);

    let browser = Browser::open(&lab.router);
    browser.log_in_and_open(&people.stranger);
    let message = browser.wait_for(
        "the stranger's message",
        "!document.getElementById('ddm-refused').hidden && document.getElementById('ddm-refused').textContent",
    );
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("You are not allowed to see this router's connections"),
        "{message}"
    );
    assert_eq!(
        browser.js("return document.getElementById('ddm-content').hidden;"),
        json!(true)
    );
    assert!(browser.accessibility_violations().is_empty());
    assert!(browser.console_errors().is_empty());
}
