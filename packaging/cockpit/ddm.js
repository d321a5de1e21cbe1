/*
 * ddm's page in Cockpit.
 *
 * Everything comes from the `ddm` command, run through Cockpit's bridge as
 * the person logged in, so the service's own access checks decide what
 * they see and may do (the groups ddm and ddm-admin), exactly as at a
 * terminal:
 *
 *   ddm info --json                 the role, and whether the service runs
 *                                   (every 5 s: a restart shows as
 *                                   another start time)
 *   ddm interfaces --json           the table, once and after a restart
 *   ddm watch --json --resume       every change as it happens, kept open
 *                                   (it resumes by itself across restarts)
 *   ddm history --since 7days --json, ddm uptime --since 24h|7days --json
 *                                   the timelines and their figures
 *   ddm health --json, ddm groups --json
 *                                   health samples every 2 s, groups on
 *                                   each change
 *   ddm connect|disconnect|enable|disable NAME, ddm reload
 *                                   the admin's buttons
 *
 * No build step: plain JavaScript on Cockpit's cockpit.js, PatternFly's
 * classes from the stylesheet Cockpit's shell ships.
 */
"use strict";

(function () {
    const ERROR_LINE = /([A-Z][A-Z0-9_]+) \((\d+)\): (.*)/;
    const DAY = 24 * 3600 * 1000;
    const WINDOWS = { day: DAY, week: 7 * DAY };
    const HEALTH_SAMPLES = 900; // 30 minutes at one sample every 2 s

    const page = {
        role: null,
        started: null, // when the service started (ms), as it says
        interfaces: new Map(), // name -> the interface as `ddm interfaces --json` has it
        groups: [],
        journal: [], // journal entries of the last 7 days, oldest first
        journalSeq: 0, // the newest sequence number among them
        live: [], // events from the stream not yet read from the journal
        uptime: { day: new Map(), week: new Map() },
        window: "day",
        health: new Map(), // name -> [{ t, rtt, loss }]
        lastSeq: null,
        watch: null,
    };

    const $ = (id) => document.getElementById(id);

    /* ---- the ddm command ---- */

    /* Runs `ddm ARGS`; resolves with its output, rejects with
     * { name, code, text } from the error line it printed. */
    function ddm(args) {
        return new Promise((resolve, reject) => {
            cockpit.spawn(["ddm"].concat(args), { err: "message" })
                    .then(resolve, ex => reject(failure(ex)));
        });
    }

    function failure(ex) {
        if (ex.problem === "not-found")
            return { name: "", code: 0, text: "The ddm command is not installed on this machine." };
        const message = (ex.message || ex.problem || String(ex)).trim();
        const found = ERROR_LINE.exec(message);
        if (found)
            return { name: found[1], code: Number(found[2]), text: found[3], message };
        return { name: "", code: 0, text: message, message };
    }

    function describe(error) {
        return error.name ? `${error.name} (${error.code}): ${error.text}` : error.text;
    }

    const lines = (output) => output.split("\n").filter(l => l.trim() !== "").map(l => JSON.parse(l));

    /* ---- start, and the service coming and going ---- */

    function show(which) {
        for (const id of ["ddm-content", "ddm-refused", "ddm-away"])
            $(id).hidden = id !== which;
        $("ddm").setAttribute("aria-busy", "false");
    }

    function refused() {
        page.role = null;
        $("ddm-service").textContent = "";
        show("ddm-refused");
    }

    async function poll() {
        let info;
        try {
            info = JSON.parse(await ddm(["info", "--json"]));
        } catch (error) {
            if (error.name === "ERROR_ACCESS_DENIED")
                return refused();
            $("ddm-away-why").textContent = describe(error) + " It is asked again every few seconds.";
            $("ddm-service").textContent = "The service is not answering.";
            show("ddm-away");
            page.started = null;
            return;
        }
        if (info.role !== "monitor" && info.role !== "admin")
            return refused();
        // The service's start, to the second: another one is a restart.
        const started = Date.now() - info.up_time * 1000;
        const restarted = page.started === null || Math.abs(started - page.started) > 2000;
        page.started = started;
        const running = !info.lan_only_mode;
        page.role = info.role;
        document.body.classList.toggle("ddm-admin", info.role === "admin");
        $("ddm-reload").hidden = info.role !== "admin";
        $("ddm-service").textContent =
            `The router is ${running ? "running" : "stopped (LAN only)"}, up ${span(info.up_time * 1000)}; ` +
            `you are ${info.role === "admin" ? "an administrator" : "a monitor"}.`;
        show("ddm-content");
        if (restarted)
            await loadAll();
        if (!page.watch)
            follow();
    }

    async function loadAll() {
        await loadInterfaces();
        await Promise.all([loadHistory(), loadUptime(), loadGroups(), sampleHealth()]);
    }

    async function loadInterfaces() {
        try {
            const list = JSON.parse(await ddm(["interfaces", "--json"]));
            // An event that came while the list was on its way is newer
            // than the list: it stays.
            for (const i of list) {
                const shown = page.interfaces.get(i.name);
                if (shown && shown.handle === i.handle && newer(shown.since, i.since))
                    Object.assign(i, pick(shown, ["state", "enabled", "since", "last_error", "last_error_name", "last_error_text"]));
            }
            page.interfaces = new Map(list.map(i => [i.name, i]));
            renderInterfaces();
        } catch (error) {
            alertOf("danger", "The interfaces could not be read", describe(error));
        }
    }

    /* ---- the live stream ---- */

    function follow() {
        const args = ["watch", "--json", "--resume"];
        if (page.lastSeq !== null)
            args.push("--since", String(page.lastSeq));
        let buffer = "";
        const proc = cockpit.spawn(["ddm"].concat(args), { err: "message" });
        page.watch = proc;
        proc.stream(data => {
            buffer += data;
            let end;
            while ((end = buffer.indexOf("\n")) >= 0) {
                const line = buffer.slice(0, end).trim();
                buffer = buffer.slice(end + 1);
                if (line)
                    changed(JSON.parse(line));
            }
        });
        const again = () => {
            if (page.watch === proc) {
                page.watch = null;
                window.setTimeout(() => { if (!page.watch && page.role) follow() }, 2000);
            }
        };
        proc.then(again, again);
    }

    function changed(event) {
        if (event.missed !== undefined) {
            loadAll();
            return;
        }
        page.lastSeq = event.seq;
        if (event.group !== undefined) {
            page.live.push({ kind: "group_switch", seq: event.seq, time: event.time, group: event.group, from: event.from, to: event.to, reason: event.reason });
            loadGroups();
            soon("history", moreHistory);
            return;
        }
        page.live.push({
            kind: "transition",
            seq: event.seq,
            time: event.time,
            interface: event.interface,
            from: event.from,
            to: event.to,
            last_error: event.last_error,
            last_error_name: event.last_error_name,
            last_error_text: event.last_error_text,
        });
        const known = page.interfaces.get(event.interface);
        if (!known || known.handle !== event.handle) {
            loadInterfaces();
        } else if (!newer(known.since, event.time)) {
            // (An event replayed from the journal older than the list the
            // page has is history only.)
            known.state = event.to;
            known.since = event.time;
            if (event.to === "connected")
                known.enabled = true;
            known.last_error = event.last_error;
            known.last_error_name = event.last_error_name;
            known.last_error_text = event.last_error_text;
            renderInterfaces();
        }
        // One drawing of the timelines for a burst of events.
        soon("draw", renderHistory, 0);
        // The journal has what the stream does not carry (the reason).
        soon("history", moreHistory);
        soon("uptime", loadUptime);
        soon("groups", loadGroups);
    }

    /* Whether time `a` is after time `b` (RFC 3339). */
    function newer(a, b) {
        return Boolean(a && b) && Date.parse(a) > Date.parse(b);
    }

    function pick(object, keys) {
        return Object.fromEntries(keys.map(k => [k, object[k]]));
    }

    /* Runs `what` once, `delay` ms (a second) after the first of several
     * calls. */
    const pending = {};
    function soon(key, what, delay = 1000) {
        if (pending[key])
            return;
        pending[key] = window.setTimeout(() => { delete pending[key]; what() }, delay);
    }

    /* ---- the interface table ---- */

    /* Rows are kept and changed in place, so that a focused button keeps
     * its focus while figures change around it. */
    function renderInterfaces() {
        const body = $("ddm-interfaces").tBodies[0];
        const kept = new Map([...body.rows].map(r => [r.dataset.interface, r]));
        const rows = [];
        for (const i of page.interfaces.values()) {
            const row = kept.get(i.name) || newRow(i.name);
            fillRow(row, i);
            rows.push(row);
        }
        if (rows.length === 0) {
            const row = document.createElement("tr");
            const td = cell("", "The router has no interfaces.");
            td.colSpan = 9;
            row.append(td);
            rows.push(row);
        }
        const current = [...body.rows];
        if (current.length !== rows.length || current.some((r, n) => r !== rows[n]))
            body.replaceChildren(...rows);
    }

    const COLUMNS = ["Name", "Type", "State", "Dial", "Since", "Last error", "RTT", "Loss", "Actions"];

    function newRow(name) {
        const row = document.createElement("tr");
        row.dataset.interface = name;
        for (const label of COLUMNS) {
            const td = cell(label, "");
            if (label === "Actions")
                td.className = "ddm-actions ddm-admin-only";
            row.append(td);
        }
        row.cells[0].className = "ddm-name";
        return row;
    }

    function fillRow(row, i) {
        const [name, type, state, dial, since, error, rtt, loss, actions] = row.cells;
        setText(name, i.name);
        setText(type, i.type);
        fillState(state, i);
        setText(dial, i.dial || "-");
        setText(since, i.since ? when(i.since, "short") : "-");
        since.title = i.since || "";
        fillError(error, i.last_error, i.last_error_name, i.last_error_text);
        setText(rtt, i.health && i.health.rtt_ms !== null ? `${i.health.rtt_ms.toFixed(1)} ms` : "-");
        setText(loss, i.health ? `${Math.round(i.health.loss_percent)} %` : "-");
        fillActions(actions, i);
    }

    function setText(element, text) {
        if (element.textContent !== text)
            element.textContent = text;
    }

    function cell(label, text) {
        const td = document.createElement("td");
        if (label)
            td.dataset.label = label;
        td.textContent = text;
        return td;
    }

    const STATE_COLOURS = { connected: "green", connecting: "blue", disconnected: "orange", unreachable: "red" };

    function fillState(td, i) {
        const text = i.state + (i.enabled ? "" : " (disabled)");
        const shown = td.firstElementChild;
        if (shown && shown.dataset.state === i.state && shown.textContent === text)
            return;
        const label = document.createElement("span");
        label.className = `pf-c-label pf-m-${STATE_COLOURS[i.state] || "grey"} ddm-state`;
        label.dataset.state = i.state;
        const content = document.createElement("span");
        content.className = "pf-c-label__content";
        content.textContent = text;
        label.append(content);
        td.replaceChildren(label);
    }

    function fillError(td, code, name, text) {
        const key = String(code || 0);
        if (td.dataset.error === key)
            return;
        td.dataset.error = key;
        if (!code) {
            td.textContent = "-";
            return;
        }
        const strong = document.createElement("span");
        strong.className = "ddm-error-name";
        strong.textContent = `${name} (${code})`;
        const small = document.createElement("span");
        small.className = "ddm-error-text";
        small.textContent = text;
        td.replaceChildren(strong, small);
    }

    /* The buttons that apply to a declared interface now; none for a
     * kernel link (the kernel's to change) or without the admin role. */
    function fillActions(td, i) {
        const buttons = [];
        if (page.role === "admin" && i.dial) {
            const up = i.state === "connected" || i.state === "connecting";
            if (i.enabled && !up)
                buttons.push(["connect", "Connect", "pf-m-primary"]);
            if (up)
                buttons.push(["disconnect", "Disconnect", "pf-m-secondary"]);
            buttons.push(i.enabled ? ["disable", "Disable", "pf-m-link"] : ["enable", "Enable", "pf-m-link"]);
        }
        const key = buttons.map(b => b[0]).join(",");
        if (td.dataset.actions === key)
            return;
        td.dataset.actions = key;
        td.replaceChildren(...buttons.map(([verb, label, style]) => {
            const button = document.createElement("button");
            button.type = "button";
            button.className = `pf-c-button pf-m-small ${style}`;
            button.textContent = label;
            button.setAttribute("aria-label", `${label} ${i.name}`);
            button.dataset.action = verb;
            // A connect waits for its attempt, to show how it ended.
            const args = verb === "connect" ? [verb, i.name, "--wait"] : [verb, i.name];
            button.addEventListener("click", () => act(args, `${label} ${i.name}`, button));
            return button;
        }));
    }

    /* ---- the admin's actions ---- */

    async function act(args, what, button) {
        if (button)
            button.disabled = true;
        try {
            const output = (await ddm(args)).trim();
            alertOf("success", `${what}: done`, output);
            // Enabling and disabling change what no event carries.
            await (args[0] === "reload" ? loadAll() : loadInterfaces());
        } catch (error) {
            alertOf("danger", `${what}: failed`, describe(error));
        } finally {
            if (button)
                button.disabled = false;
        }
    }

    function alertOf(kind, title, text) {
        const alert = document.createElement("div");
        alert.className = `pf-c-alert pf-m-${kind} pf-m-inline ddm-alert`;
        alert.dataset.kind = kind;
        const heading = document.createElement("p");
        heading.className = "pf-c-alert__title";
        heading.textContent = title;
        alert.append(heading);
        if (text) {
            const body = document.createElement("div");
            body.className = "pf-c-alert__description";
            body.textContent = text;
            alert.append(body);
        }
        const close = document.createElement("button");
        close.type = "button";
        close.className = "pf-c-button pf-m-plain ddm-close";
        close.setAttribute("aria-label", `Close: ${title}`);
        close.textContent = "×";
        close.addEventListener("click", () => alert.remove());
        alert.append(close);
        const alerts = $("ddm-alerts");
        alerts.prepend(alert);
        while (alerts.children.length > 5)
            alerts.lastChild.remove();
    }

    /* ---- groups ---- */

    async function loadGroups() {
        try {
            page.groups = JSON.parse(await ddm(["groups", "--json"]));
        } catch (error) {
            page.groups = [];
        }
        renderGroups();
    }

    function renderGroups() {
        $("ddm-groups-section").hidden = page.groups.length === 0;
        const cards = page.groups.map(g => {
            const card = newCard(`Group ${g.group}`);
            const carrier = g.carrier
                ? `${g.carrier}${g.via_trigger ? "'s trigger (dialed by the first packet)" : ""}`
                : "nothing: no member can carry traffic";
            card.body.append(
                para(`Routes ${g.routes.join(", ")} go through ${carrier}` + (g.since ? ` since ${when(g.since)}` : "") + "."),
                para(`${g.switches} switches since the service started; failback after ${g.failback_secs} s.`),
            );
            const list = document.createElement("ul");
            list.className = "ddm-members";
            for (const m of g.members) {
                const item = document.createElement("li");
                item.textContent = `${m.name}: ${m.state}` + (m.health ? `, health ${m.health}` : "") + (m.carrying ? " (carrying the traffic)" : "");
                if (m.carrying)
                    item.className = "ddm-carrying";
                list.append(item);
            }
            card.body.append(list);
            const switches = entries().filter(e => e.kind === "group_switch" && e.group === g.group).slice(-5);
            if (switches.length) {
                card.body.append(para("Last switches:"));
                const recent = document.createElement("ul");
                for (const s of switches.reverse()) {
                    const item = document.createElement("li");
                    item.textContent = `${when(s.time)}: ${s.from || "none"} → ${s.to || "none"} (${s.reason || "-"})`;
                    recent.append(item);
                }
                card.body.append(recent);
            }
            return card.element;
        });
        $("ddm-groups").replaceChildren(...cards);
    }

    function newCard(title) {
        const element = document.createElement("article");
        element.className = "pf-c-card pf-m-compact ddm-card";
        const header = document.createElement("div");
        header.className = "pf-c-card__title";
        const heading = document.createElement("h3");
        heading.textContent = title;
        header.append(heading);
        const body = document.createElement("div");
        body.className = "pf-c-card__body";
        element.append(header, body);
        return { element, body };
    }

    function para(text) {
        const p = document.createElement("p");
        p.textContent = text;
        return p;
    }

    /* ---- health ---- */

    async function sampleHealth() {
        if (!page.role || ![...page.interfaces.values()].some(i => i.health))
            return;
        let report;
        try {
            report = JSON.parse(await ddm(["health", "--json"]));
        } catch (error) {
            return;
        }
        const now = Date.now();
        for (const h of report) {
            const samples = page.health.get(h.interface) || [];
            samples.push({ t: now, rtt: h.rtt_ms, loss: h.loss_percent, verdict: h.health });
            if (samples.length > HEALTH_SAMPLES)
                samples.shift();
            page.health.set(h.interface, samples);
            const known = page.interfaces.get(h.interface);
            if (known)
                known.health = { verdict: h.health, rtt_ms: h.rtt_ms, loss_percent: h.loss_percent };
        }
        if (report.length) {
            renderInterfaces();
            renderHealth();
        }
        $("ddm-health-section").hidden = report.length === 0;
    }

    function renderHealth() {
        const cards = [];
        for (const [name, samples] of page.health) {
            const last = samples[samples.length - 1];
            const card = newCard(`${name}: ${last.verdict}`);
            card.body.append(
                para(`RTT ${last.rtt === null ? "-" : last.rtt.toFixed(1) + " ms"}, loss ${Math.round(last.loss)} %.`),
                chart(name, samples),
            );
            cards.push(card.element);
        }
        $("ddm-health").replaceChildren(...cards);
    }

    const SVG = "http://www.w3.org/2000/svg";
    function svg(tag, attributes) {
        const element = document.createElementNS(SVG, tag);
        for (const [key, value] of Object.entries(attributes || {}))
            element.setAttribute(key, value);
        return element;
    }

    /* RTT as a line (left scale), loss as bars (0-100 %). */
    function chart(name, samples) {
        const width = 600;
        const height = 120;
        const rtts = samples.map(s => s.rtt).filter(r => r !== null);
        const top = Math.max(1, ...rtts) * 1.2;
        const first = samples[0].t;
        const spanMs = Math.max(1, samples[samples.length - 1].t - first);
        const x = t => ((t - first) / spanMs) * (width - 40) + 36;
        const picture = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "ddm-chart", role: "img" });
        picture.setAttribute("aria-label", `${name}: RTT up to ${top.toFixed(1)} ms and loss over the last ${span(spanMs)}`);
        picture.append(svg("line", { x1: 36, y1: height - 14, x2: width - 4, y2: height - 14, class: "ddm-axis" }));
        const scale = svg("text", { x: 0, y: 12, class: "ddm-chart-label" });
        scale.textContent = `${top.toFixed(0)} ms`;
        picture.append(scale);
        for (const s of samples) {
            if (s.loss > 0) {
                const h = (s.loss / 100) * (height - 20);
                picture.append(svg("rect", { x: x(s.t) - 1, y: height - 14 - h, width: 2, height: h, class: "ddm-loss" }));
            }
        }
        const points = samples.filter(s => s.rtt !== null)
                .map(s => `${x(s.t).toFixed(1)},${(height - 14 - (s.rtt / top) * (height - 20)).toFixed(1)}`);
        if (points.length)
            picture.append(svg("polyline", { points: points.join(" "), class: "ddm-rtt" }));
        return picture;
    }

    /* ---- history ---- */

    /* The journal's entries, then the stream's newer events. */
    function entries() {
        return page.journal.concat(page.live.filter(e => e.seq > page.journalSeq));
    }

    async function loadHistory() {
        try {
            page.journal = lines(await ddm(["history", "--since", "7days", "--json"]));
        } catch (error) {
            page.journal = [];
            alertOf("warning", "The journal could not be read", describe(error));
        }
        journalRead();
    }

    /* What the journal has after its newest entry the page read. */
    async function moreHistory() {
        const newest = page.journal[page.journal.length - 1];
        if (!newest)
            return loadHistory();
        let more;
        try {
            more = lines(await ddm(["history", "--since", newest.time, "--json"]));
        } catch (error) {
            return;
        }
        const weekAgo = Date.now() - WINDOWS.week;
        page.journal = page.journal.filter(e => Date.parse(e.time) >= weekAgo)
                .concat(more.filter(e => e.id > newest.id));
        journalRead();
    }

    function journalRead() {
        page.journalSeq = Math.max(0, ...page.journal.filter(e => e.seq !== undefined).map(e => e.seq));
        page.live = page.live.filter(e => e.seq > page.journalSeq);
        if (page.lastSeq === null || page.journalSeq > page.lastSeq)
            page.lastSeq = page.journalSeq || page.lastSeq;
        renderHistory();
        renderGroups();
    }

    async function loadUptime() {
        for (const [key, since] of [["day", "24h"], ["week", "7days"]]) {
            try {
                const report = JSON.parse(await ddm(["uptime", "--since", since, "--json"]));
                page.uptime[key] = new Map(report.interfaces.map(i => [i.interface, i]));
            } catch (error) {
                page.uptime[key] = new Map();
            }
        }
        renderHistory();
    }

    const BOUNDARIES = ["service_start", "service_stop", "ddm_start", "ddm_stop"];

    /* An interface's states over the window, from the entries `all`:
     * [{ from, to, state, change }], where `change` is the entry that began
     * the piece (absent when it began with the window or a start of the
     * service). Across a stop or a start
     * of the service its state is not known until its next change, which
     * says what it was (`from`); while not known, nothing is drawn. */
    function pieces(all, name, start, end) {
        const result = [];
        let state = null;
        let since = start;
        let change = null;
        const close = (t) => {
            if (t > since && state !== null)
                result.push({ from: since, to: t, state, change });
        };
        for (const e of all) {
            const t = Date.parse(e.time);
            if (BOUNDARIES.includes(e.kind)) {
                close(Math.max(t, start));
                state = null;
                since = Math.max(t, start);
                change = null;
                continue;
            }
            if (e.kind !== "transition" || e.interface !== name)
                continue;
            if (t <= start) {
                state = e.to;
                continue;
            }
            if (state === null)
                state = e.from;
            close(t);
            state = e.to;
            since = t;
            change = e;
        }
        const now = page.interfaces.get(name);
        if (state === null && now)
            state = now.state; // no change since the last boundary: as it is now
        close(end);
        return result;
    }

    /* Each interface's row is kept (its bar too: the pointer stays on
     * it); its pieces and figures are drawn again. */
    function renderHistory() {
        const container = $("ddm-history");
        const kept = new Map([...container.children].map(r => [r.dataset.interface, r]));
        const all = entries();
        const rows = [...page.interfaces.keys()].map(name => {
            const row = kept.get(name) || newTimeline(name);
            fillTimeline(row, name, all);
            return row;
        });
        const current = [...container.children];
        if (current.length !== rows.length || current.some((r, n) => r !== rows[n]))
            container.replaceChildren(...rows);
    }

    function newTimeline(name) {
        const row = document.createElement("div");
        row.className = "ddm-timeline";
        row.dataset.interface = name;
        const label = document.createElement("div");
        label.className = "ddm-timeline-name";
        label.textContent = name;
        const bar = svg("svg", { viewBox: "0 0 1000 24", preserveAspectRatio: "none", class: "ddm-bar", role: "img" });
        const summary = document.createElement("div");
        summary.className = "ddm-timeline-figures";
        row.append(label, bar, summary);
        return row;
    }

    function fillTimeline(row, name, all) {
        const [, bar, summary] = row.children;
        const span_ = WINDOWS[page.window];
        const end = Date.now();
        const start = end - span_;
        const figures = page.uptime[page.window].get(name);
        setText(summary, figures
            ? `${figures.connected_percent.toFixed(2)} % connected, ${figures.disconnects} outage${figures.disconnects === 1 ? "" : "s"}` +
              (figures.disconnects ? `, longest ${span(figures.longest_outage_secs * 1000)}` : "")
            : "no figures");
        bar.setAttribute("aria-label", `${name} over the ${page.window === "day" ? "last 24 hours" : "last 7 days"}: ${summary.textContent}`);
        const x = t => ((t - start) / span_) * 1000;
        // Connected pieces first: the others, drawn at least a few pixels
        // wide so that a short outage can be seen and pointed at, lie on
        // top.
        const drawn = pieces(all, name, start, end)
                .sort((a, b) => (a.state === "connected" ? 0 : 1) - (b.state === "connected" ? 0 : 1));
        bar.replaceChildren(...drawn.map(piece => {
            const width = Math.max(piece.state === "connected" ? 0.5 : 6, x(piece.to) - x(piece.from));
            const rect = svg("rect", {
                x: Math.min(x(piece.from), 1000 - width).toFixed(2),
                y: 0,
                width: width.toFixed(2),
                height: 24,
                class: `ddm-piece ddm-${piece.state}`,
            });
            rect.dataset.state = piece.state;
            if (piece.change)
                rect.dataset.seq = piece.change.seq;
            const tip = tipOf(name, piece);
            rect.dataset.tip = tip;
            const title = svg("title");
            title.textContent = tip;
            rect.append(title);
            rect.addEventListener("mouseenter", ev => showTip(ev, tip));
            rect.addEventListener("mousemove", ev => moveTip(ev));
            rect.addEventListener("mouseleave", hideTip);
            return rect;
        }));
    }

    function tipOf(name, piece) {
        const parts = [`${name}: ${piece.state} from ${when(piece.from)} to ${when(piece.to)}`];
        const change = piece.change;
        if (change) {
            parts.push(`changed at ${when(change.time)} from ${change.from}`);
            if (change.reason)
                parts.push(`reason: ${change.reason}`);
            if (change.last_error)
                parts.push(`last error ${change.last_error_name} (${change.last_error}): ${change.last_error_text}`);
        }
        return parts.join("; ");
    }

    function showTip(ev, text) {
        $("ddm-tooltip-text").textContent = text;
        $("ddm-tooltip").hidden = false;
        moveTip(ev);
    }

    function moveTip(ev) {
        const tip = $("ddm-tooltip");
        const x = Math.min(ev.clientX + 12, window.innerWidth - tip.offsetWidth - 4);
        tip.style.left = `${Math.max(4, x)}px`;
        tip.style.top = `${ev.clientY + 16}px`;
    }

    function hideTip() {
        $("ddm-tooltip").hidden = true;
    }

    /* ---- time ---- */

    function when(time, dateStyle) {
        const date = new Date(time);
        return date.toLocaleString(undefined, { dateStyle: dateStyle || "medium", timeStyle: "medium" });
    }

    function span(ms) {
        const s = Math.round(ms / 1000);
        if (s < 60)
            return `${s} s`;
        if (s < 3600)
            return `${Math.floor(s / 60)} min ${s % 60} s`;
        if (s < 86400)
            return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
        return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
    }

    /* ---- Cockpit's light and dark themes ---- */

    function theme(style) {
        const chosen = style || localStorage.getItem("shell:style") || "auto";
        const dark = chosen === "dark" ||
            (chosen === "auto" && window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
        document.documentElement.classList.toggle("pf-theme-dark", dark);
    }

    window.addEventListener("storage", ev => { if (ev.key === "shell:style") theme() });
    window.addEventListener("cockpit-style", ev => theme(ev.detail.style));
    if (window.matchMedia)
        window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => theme());
    theme();

    /* ---- wiring ---- */

    $("ddm-reload").addEventListener("click", ev => act(["reload"], "Reload configuration", ev.currentTarget));
    for (const button of document.querySelectorAll("[data-window]")) {
        button.addEventListener("click", () => {
            page.window = button.dataset.window;
            for (const other of document.querySelectorAll("[data-window]")) {
                const on = other === button;
                other.classList.toggle("pf-m-selected", on);
                other.setAttribute("aria-pressed", String(on));
            }
            renderHistory();
        });
    }

    poll();
    window.setInterval(poll, 5000);
    window.setInterval(sampleHealth, 2000);
    window.setInterval(renderHistory, 60000);
}());
