/* app.js — fills the console's pages from /api/* and keeps them live from
 * /api/events (Server-Sent Events). Everything is written with textContent:
 * no value from the network is ever parsed as HTML. */
"use strict";
(function () {
  const T = window.RETE_TEXTS;
  const page = document.body.dataset.page;
  let lang = pickLang();
  let last = null; // the latest answer, re-drawn when the language changes

  function pickLang() {
    const q = new URLSearchParams(location.search).get("lang");
    if (q === "it" || q === "en") return q;
    try {
      const s = localStorage.getItem("rete.lang");
      if (s === "it" || s === "en") return s;
    } catch (e) { /* storage off: Italian */ }
    return "it";
  }

  function t(key, vars) {
    let s = (T[lang] && T[lang][key]) || T.it[key] || key;
    for (const k in vars || {}) s = s.split("{" + k + "}").join(vars[k]);
    return s;
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (const c of kids) if (c != null) e.append(c);
    return e;
  }

  function clear(id) {
    const e = document.getElementById(id);
    e.replaceChildren();
    return e;
  }

  // a party or service by its directory name, its code on hover
  function named(map, code) {
    const n = map && map[code];
    return n ? el("abbr", { title: code, text: n, "data-code": code }) : el("span", { text: code || "—", "data-code": code || "" });
  }

  function ms(v) {
    if (v == null || v === "" || v === 0 || v === "0") return null;
    if (typeof v === "number") return v;
    const n = Number(v);
    if (!isNaN(n)) return n;
    const d = Date.parse(v);
    return isNaN(d) ? null : d;
  }

  function when(v, tz) {
    const m = ms(v);
    if (m == null) return t("none");
    return new Intl.DateTimeFormat(lang === "it" ? "it-IT" : "en-GB", {
      timeZone: tz, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit"
    }).format(new Date(m));
  }

  function clock(tz) {
    return new Intl.DateTimeFormat(lang === "it" ? "it-IT" : "en-GB", {
      timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit"
    }).format(new Date());
  }

  // a duration in words: "45 s", "12 min", "3 h 05 min", "2 g 4 h"
  function dur(minutes) {
    if (minutes == null || isNaN(minutes)) return t("none");
    const m = Math.max(0, Math.round(minutes));
    if (m < 1) return t("d.s", { n: Math.round(minutes * 60) });
    if (m < 60) return t("d.m", { n: m });
    if (m < 48 * 60) {
      const h = Math.floor(m / 60), r = m % 60;
      return t("d.h", { n: h }) + (r ? " " + t("d.m", { n: String(r).padStart(2, "0") }) : "");
    }
    const d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60);
    return t("d.d", { n: d }) + (h ? " " + t("d.h", { n: h }) : "");
  }

  function statusWord(s) { return t("st." + s); }

  function texts() {
    document.documentElement.lang = lang;
    for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
    document.getElementById("lang").textContent = t("lang.switch");
    const titles = { salute: "nav.health", rapporto: "nav.report", flussi: "nav.flows", andamento: "nav.trend", caso: "nav.case" };
    document.title = "rete · " + t(titles[page] || "nav.overview");
  }

  // a count hidden for the steering group ([report] min_count): "< 3" as
  // it is; "suppressed" (hidden so that no small count can be worked out)
  // in the page's language; not a number for the charts
  function shown(v) { return v === "suppressed" ? t("suppressed") : String(v); }
  function num(v) { return typeof v === "number" ? v : null; }
  function hours(v) { return v == null ? t("none") : typeof v === "string" ? shown(v) : dur(v * 60); }
  // the steering group's figures are rounded (roundedTo, minCount): said
  // under the table, on every page that shows them
  function roundedNote(o) {
    const p = document.getElementById("rounded-note");
    if (p) p.textContent = o && o.roundedTo > 1 ? t("rounded.note", { r: o.roundedTo, n: o.minCount, m: o.minCount - 1 }) : "";
  }

  // the steering group's row of the rows of fewer than minCount referrals
  // each, merged ("altri"): its first nk cells are its name, not keys
  function othersRow(tr, nk, min) {
    for (let i = 0; i < nk; i++) tr.cells[i].replaceChildren(i ? "" : t("others"));
    tr.cells[0].title = t("others.title", { n: min });
    tr.classList.add("others");
  }

  function drawOverview(o) {
    const mon = o.monitor, tz = o.timeZone, names = o.names, svc = o.services;
    document.getElementById("who").textContent = (names[o.party] || o.party);
    roundedNote(mon);
    // overdue first: who waits on whom, since when, how late
    const ol = clear("overdue");
    const cnt = document.getElementById("overdue-count");
    // the steering group gets their number only (overdueCount), not the rows
    const nOver = mon.overdueCount !== undefined ? mon.overdueCount : mon.overdue.length;
    cnt.textContent = String(nOver);
    cnt.dataset.n = String(nOver);
    if (mon.overdueCount !== undefined && nOver > 0)
      ol.append(el("li", { cls: "none-item", text: t("overdue.count-only", { n: nOver }) }));
    else if (nOver === 0) ol.append(el("li", { cls: "none-item", text: t("overdue.none") }));
    for (const r of mon.overdue) {
      const main = el("div", { cls: "main" });
      const w = t("overdue.waits", { req: "\u0001", perf: "\u0002" }).split(/(\u0001|\u0002)/);
      for (const part of w) {
        if (part === "\u0001") main.append(el("strong", {}, named(names, r.requester)));
        else if (part === "\u0002") main.append(el("strong", {}, named(names, r.performer)));
        else main.append(part);
      }
      main.append(" " + t("overdue.since", { since: when(r.requestedAt, tz) }) + " — ");
      const due = ms(r.dueAt), at = ms(mon.at);
      const late = due != null && at != null ? (at - due) / 60000 : r.lateMinutes;
      main.append(el("span", { cls: "late", text: t("overdue.late", { late: dur(late) }) }));
      const meta = el("div", { cls: "meta" });
      meta.append(el("abbr", { title: r.referralId, cls: "label", text: t("referral", { label: r.label }) }), " · ",
        named(svc, r.service), " · " + t("priority", { p: t("pr." + r.priority) }) + " · " + statusWord(r.status) +
        " · " + t("overdue.due", { due: when(r.dueAt, tz) }));
      ol.append(el("li", { "data-label": r.label, "data-late-minutes": String(r.lateMinutes) }, main, meta));
    }
    // by status
    const st = clear("status");
    const cols = Object.keys(mon.statusTotals).filter(k => k !== "total");
    const head = el("tr", {}, el("th", { text: t("status.requester") }), el("th", { text: t("status.performer") }),
      el("th", { text: t("status.service") }));
    for (const c of cols) head.append(el("th", { cls: "n", text: statusWord(c), title: c }));
    head.append(el("th", { cls: "n", text: t("status.total") }));
    st.append(el("thead", {}, head));
    const tb = el("tbody");
    for (const g of mon.byStatus) {
      const tr = el("tr", {}, el("td", {}, named(names, g.requester)), el("td", {}, named(names, g.performer)),
        el("td", {}, named(svc, g.service)));
      if (g.others) othersRow(tr, 3, mon.minCount);
      for (const c of cols) tr.append(el("td", { cls: "n" + (g.counts[c] ? "" : " zero"), "data-status": c, text: shown(g.counts[c]) }));
      tr.append(el("td", { cls: "n", text: shown(g.total) }));
      tb.append(tr);
    }
    const tot = el("tr", { cls: "total" }, el("td", { text: t("status.total") }), el("td"), el("td"));
    for (const c of cols) tot.append(el("td", { cls: "n", id: "total-" + c, text: shown(mon.statusTotals[c]) }));
    tot.append(el("td", { cls: "n", id: "status-total", text: shown(mon.statusTotals.total) }));
    tb.append(tot);
    st.append(tb);
    // times
    const tt = clear("times");
    tt.append(el("thead", {}, el("tr", {}, el("th", { text: t("times.step") }), el("th", { cls: "n", text: t("times.count") }),
      el("th", { cls: "n", text: t("times.median") }), el("th", { cls: "n", text: t("times.p90") }))));
    for (const k of ["toReceive", "toAccept", "toComplete"]) {
      const x = mon.times[k];
      tt.append(el("tr", {}, el("td", { text: t("times." + k) }), el("td", { cls: "n", id: "times-" + k, text: shown(x.count) }),
        el("td", { cls: "n", text: hours(x.medianHours) }),
        el("td", { cls: "n", text: hours(x.p90Hours) })));
    }
    drawAgencies(mon.agencies, names, tz);
  }

  // withheld: a queue whose length the steering group reads as "< 3" and
  // whose oldest message's time the console leaves out (console.c
  // steering_queues)
  function withheld(a) {
    return typeof a.queueDepth === "string" && a.queueDepth.startsWith("<") && !a.oldestUndeliveredAt;
  }

  function drawAgencies(list, names, tz) {
    const at = clear("agencies");
    at.append(el("thead", {}, el("tr", {}, el("th", { text: t("agencies.name") }), el("th", { text: t("agencies.state") }),
      el("th", { cls: "n", text: t("agencies.queue") }), el("th", { text: t("agencies.oldest") }),
      el("th", { text: t("agencies.seen") }))));
    for (const a of list || []) {
      const up = a.connected === true || a.state === "connected";
      at.append(el("tr", {}, el("td", {}, named(names, a.id)),
        el("td", { text: t(up ? "agencies.connected" : "agencies.silent") }),
        el("td", { cls: "n", text: String(a.queueDepth || 0) }),
        el("td", { text: withheld(a) ? t("suppressed") : when(a.oldestUndeliveredAt, tz) }),
        el("td", { text: when(a.lastSeenAt, tz) })));
    }
  }

  function bytes(n) {
    n = Number(n || 0);
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }

  function drawHealth(o) {
    const h = o.health || {}, tz = o.timeZone;
    document.getElementById("who").textContent = (o.names[o.party] || o.party);
    const s = document.getElementById("state");
    s.dataset.ok = String(h.ok === true);
    s.textContent = t(h.ok === true ? "health.ok" : "health.bad");
    const pl = clear("problems");
    for (const p of h.problems || []) pl.append(el("li", { text: p }));
    const cp = ms(h.checkpointAt);
    const row = (k, v, id) => el("tr", {}, el("th", { text: t(k) }), el("td", id ? { id: id, text: v } : { text: v }));
    // the steering group's answer has no log size (an exact count of entries)
    clear("log").append(...(h.logSize !== undefined ? [row("health.logSize", String(h.logSize || 0), "log-size")] : []),
      row("health.version", h.version || t("none")),
      row("health.checkpoint", when(cp, tz)), row("health.checkpointAge", cp ? dur((o.now - cp) / 60000) : t("none")));
    const used = Number(h.mapUsed || 0), size = Number(h.mapSize || 0);
    clear("disk").append(row("health.diskFree", bytes(h.diskFree), "disk-free"),
      row("health.mapUsed", size ? bytes(used) + " / " + bytes(size) + " (" + Math.round(100 * used / size) + "%)" : t("none")));
    drawAgencies(h.agencies, o.names, tz);
    drawWitnesses(o.witnesses || {}, o.names, tz);
    drawTimestamp(o.timestamp || {}, tz);
  }

  // the cosignatures on the latest stored checkpoint; with a witness
  // policy, whether it is met and who is missing
  function drawWitnesses(w, names, tz) {
    const st = document.getElementById("witness-state");
    const p = w.policy;
    const n = (w.cosigners || []).length;
    st.dataset.ok = p ? String(p.met === true) : String(!w.problem);
    st.textContent = w.problem ? w.problem
      : p ? t(p.met ? "wit.met" : "wit.notMet", { k: n, n: p.witnesses, q: p.quorum })
      : w.checkpointSize == null ? t(n === 1 ? "wit.countNoSizeOne" : "wit.countNoSize", { k: n })
      : t(n === 1 ? "wit.countOne" : "wit.count", { k: n, size: w.checkpointSize });
    const tb = clear("witnesses");
    if (w.problem) return;
    if (w.checkpointSize != null)
      tb.append(el("tr", {}, el("th", { text: t("wit.size") }), el("td", { id: "witness-size", text: String(w.checkpointSize) })));
    for (const c of w.cosigners || [])
      tb.append(el("tr", { "data-witness": c.id, "data-cosigned": "yes" }, el("th", {}, named(names, c.id)),
        el("td", { text: t("wit.cosigned", { at: when(c.at, tz) }) })));
    for (const id of w.missing || [])
      tb.append(el("tr", { "data-witness": id, "data-cosigned": "no" }, el("th", {}, named(names, id)),
        el("td", { cls: p ? "proof-bad" : "", text: t(p ? "wit.missing" : "wit.notYet") })));
    for (const x of w.invalid || [])
      tb.append(el("tr", { "data-witness": x.id, "data-cosigned": "invalid" }, el("th", {}, named(names, x.id)),
        el("td", { cls: "proof-bad", title: x.why, text: t("wit.invalid") })));
  }

  function drawTimestamp(s, tz) {
    const tb = clear("timestamp");
    const row = (k, v, id) => el("tr", {}, el("th", { text: t(k) }), el("td", id ? { id: id, text: v } : { text: v }));
    if (s.stamped === true) {
      tb.append(row("ts.time", when(s.genTime, tz), "ts-time"));
      if (s.size != null) tb.append(row("ts.size", String(s.size), "ts-size"));
    } else {
      const r = row("ts.state", t(s.none != null ? "ts.none" : "ts.problem"), "ts-state");
      r.title = s.none || s.problem || "";
      tb.append(r);
      if (s.none || s.problem) tb.append(el("tr", {}, el("td", { colspan: "2", cls: "note", text: s.none || s.problem })));
    }
  }

  // ---- the period report ----
  const rp = new URLSearchParams(location.search);
  function today(tz) {
    return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  }
  function reportQuery() {
    const q = new URLSearchParams();
    q.set("from", document.getElementById("from").value);
    q.set("to", document.getElementById("to").value);
    const by = [...document.querySelectorAll('input[name="by"]:checked')].map(e => e.value);
    q.set("by", by.join(","));
    if (document.getElementById("months").checked) q.set("months", "1");
    return q;
  }
  function reportInit() {
    const t0 = today("Europe/Rome");
    document.getElementById("from").value = rp.get("from") || t0.slice(0, 8) + "01";
    document.getElementById("to").value = rp.get("to") || t0;
    if (rp.get("by") != null) {
      const by = rp.get("by").split(",");
      for (const e of document.querySelectorAll('input[name="by"]')) e.checked = by.includes(e.value);
    }
    document.getElementById("months").checked = rp.get("months") === "1";
    document.getElementById("report-form").addEventListener("submit", ev => {
      ev.preventDefault();
      const q = reportQuery();
      q.set("lang", lang);
      history.replaceState(null, "", "/rapporto?" + q.toString());
      load();
    });
  }
  function drawReport(o) {
    document.getElementById("who").textContent = (o.names[o.party] || o.party);
    roundedNote(o);
    const tb = clear("report");
    const head = el("tr");
    o.headers.forEach((h, i) => head.append(el("th", { cls: i < keyCount(o) ? "" : "n", text: h })));
    tb.append(el("thead", {}, head));
    const body = el("tbody");
    const cell = (v, i) => {
      const c = o.columns[i];
      if (c === "requester" || c === "performer") return el("td", {}, named(o.names, v));
      if (c === "service") return el("td", {}, named(o.services, v));
      if (c === "ageBand") return el("td", { text: v === "adult" ? t("band.adult") : v });
      if (c === "status") return el("td", { text: v ? statusWord(v) : "" });
      if (v === null) return el("td", { cls: "n", text: "" });
      if (typeof v === "string") return el("td", { cls: "n hidden", text: v, title: t("hidden.title", { n: o.minCount, m: o.minCount - 1 }) });
      const n = Number(v);
      return el("td", { cls: "n" + (n === 0 ? " zero" : ""), text: c.startsWith("median") ? n.toLocaleString(lang === "it" ? "it-IT" : "en-GB", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : String(n) });
    };
    o.rows.forEach((r, k) => {
      const tr = el("tr", {}, ...r.map(cell));
      if (k === o.othersRow) othersRow(tr, keyCount(o), o.minCount);
      body.append(tr);
    });
    const tot = el("tr", { cls: "total" }, ...o.total.map(cell));
    if (keyCount(o) > 0) tot.firstChild.textContent = t("report.total");
    body.append(tot);
    tb.append(body);
    const q = reportQuery();
    q.set("lang", lang);
    const qs = q.toString();
    document.getElementById("dl-csv").href = "/api/report.csv?" + qs + "&sep=comma";
    document.getElementById("dl-csv-it").href = "/api/report.csv?" + qs + "&sep=semicolon";
    document.getElementById("dl-xlsx").href = "/api/report.xlsx?" + qs;
    document.body.dataset.rows = String(o.rows.length);
  }
  // ---- Flussi and Andamento ----
  const charts = {};
  function chart(id, cfg) {
    if (!window.Chart) return; // Chart.js missing: the tables stand alone
    if (charts[id]) charts[id].destroy();
    cfg.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, cfg.options || {});
    charts[id] = new window.Chart(document.getElementById(id), cfg);
  }
  const palette = ["#0b5cad", "#1a7f37", "#b42318", "#8250df", "#bf8700", "#6e7781"];
  function periodInit() {
    const t0 = today("Europe/Rome");
    const d = new Date(t0 + "T12:00:00Z");
    d.setUTCMonth(d.getUTCMonth() - (page === "andamento" ? 5 : 0));
    document.getElementById("from").value = rp.get("from") || d.toISOString().slice(0, 8) + "01";
    document.getElementById("to").value = rp.get("to") || t0;
    const st = document.getElementById("step");
    if (st && rp.get("step")) st.value = rp.get("step");
    document.getElementById("period-form").addEventListener("submit", ev => {
      ev.preventDefault();
      history.replaceState(null, "", "/" + page + "?" + periodQuery().toString());
      load();
    });
  }
  function periodQuery() {
    const q = new URLSearchParams();
    q.set("from", document.getElementById("from").value);
    q.set("to", document.getElementById("to").value);
    const st = document.getElementById("step");
    if (st) q.set("step", st.value);
    return q;
  }
  function col(o, name) { return o.columns.indexOf(name); }
  function drawFlows(o) {
    document.getElementById("who").textContent = (o.names[o.party] || o.party);
    roundedNote(o);
    const iq = col(o, "requester"), ip = col(o, "performer"), is = col(o, "sent");
    // the steering group's others row (pairs of fewer than minCount
    // referrals, merged) is not a pair: a line of its own under the matrix
    const others = o.othersRow != null ? o.rows[o.othersRow] : null;
    const pairs = o.rows.filter(r => r !== others);
    const reqs = [...new Set(pairs.map(r => r[iq]))].sort(), perfs = [...new Set(pairs.map(r => r[ip]))].sort();
    const m = clear("matrix");
    const hr = el("tr", {}, el("th", { text: t("flows.fromto") }));
    for (const p of perfs) hr.append(el("th", { cls: "n" }, named(o.names, p)));
    m.append(el("thead", {}, hr));
    const mb = el("tbody");
    for (const rq of reqs) {
      const tr = el("tr", {}, el("th", {}, named(o.names, rq)));
      for (const p of perfs) {
        const row = pairs.find(r => r[iq] === rq && r[ip] === p);
        const n = row ? row[is] : 0;
        // a pair not listed may be among the others: not an exact 0
        if (!row && others) tr.append(el("td", { cls: "n zero", "data-from": rq, "data-to": p, text: t("none"), title: t("flows.inOthers") }));
        else tr.append(el("td", { cls: "n" + (n ? "" : " zero"), "data-from": rq, "data-to": p, text: shown(n) }));
      }
      mb.append(tr);
    }
    if (others)
      mb.append(el("tr", { cls: "others" }, el("th", { title: t("others.title", { n: o.minCount }), text: t("others") }),
        el("td", { cls: "n", colspan: String(Math.max(1, perfs.length)), text: shown(others[is]) })));
    m.append(mb);
    // how they ended: completed, rejected (by reason), cancelled, failed, open
    const reasons = ["client-refused", "lack-of-capacity", "no-longer-needed", "unable-to-contact-client",
      "unable-to-contact-organisation", "other"];
    const camel = ["ClientRefused", "LackOfCapacity", "NoLongerNeeded", "UnableToContactClient",
      "UnableToContactOrganisation", "Other"];
    const kinds = [["flows.sent", "sent"], ["flows.completed", "completed"], ["flows.rejected", "rejected"],
      ["flows.cancelled", "cancelled"], ["flows.failed", "failed"], ["flows.open", "openAtEnd"]];
    const ot = clear("outcomes");
    const oh = el("tr", {}, el("th", { text: t("flows.pair") }));
    for (const [k] of kinds) oh.append(el("th", { cls: "n", text: t(k) }));
    ot.append(el("thead", {}, oh));
    const ob = el("tbody");
    const label = r => r === others ? t("others") : (o.names[r[iq]] || r[iq]) + " → " + (o.names[r[ip]] || r[ip]);
    for (const r of o.rows) {
      const tr = el("tr", {}, r === others ? el("td", { title: t("others.title", { n: o.minCount }), text: t("others") })
        : el("td", {}, named(o.names, r[iq]), " → ", named(o.names, r[ip])));
      for (const [k, c] of kinds) {
        const td = el("td", { cls: "n", "data-kind": c, text: shown(r[col(o, c)]) });
        if (c === "rejected") {
          const why = reasons.map((x, i) => [x, r[col(o, "rejected" + camel[i])]]).filter(x => x[1] > 0)
            .map(x => t("reason." + x[0]) + ": " + x[1]).join(", ");
          if (why) td.title = why;
        }
        tr.append(td);
      }
      ob.append(tr);
    }
    ot.append(ob);
    chart("flows-chart", {
      type: "bar",
      data: {
        labels: o.rows.map(label),
        datasets: kinds.slice(1).map(([k, c], i) => ({ label: t(k), data: o.rows.map(r => num(r[col(o, c)])), backgroundColor: palette[i] }))
      },
      options: { indexAxis: "y", scales: { x: { stacked: true, ticks: { precision: 0 } }, y: { stacked: true } } }
    });
    document.body.dataset.rows = String(o.rows.length);
  }
  function drawTrend(o) {
    document.getElementById("who").textContent = (o.names[o.party] || o.party);
    roundedNote(o);
    const labels = o.buckets.map(b => b.from);
    const series = [["trend.sent", "sent"], ["trend.accepted", "accepted"], ["trend.completed", "completed"],
      ["trend.rejected", "rejected"], ["trend.overdue", "overdue"]];
    const tt = clear("trend");
    const hr = el("tr", {}, el("th", { text: t("trend.period") }));
    for (const [k] of series) hr.append(el("th", { cls: "n", text: t(k) }));
    tt.append(el("thead", {}, hr));
    const tb = el("tbody");
    for (const b of o.buckets) {
      const tr = el("tr", {}, el("td", { text: b.from }));
      for (const [, c] of series) {
        const td = el("td", { cls: "n" + (b[c] ? "" : " zero"), "data-kind": c, text: shown(b[c]) });
        if (c === "rejected" && b.rejectedByReason) {
          // rejected by reason, in words, on hover
          const why = Object.entries(b.rejectedByReason).filter(x => x[1] > 0).map(x => t("reason." + x[0]) + ": " + x[1]).join(", ");
          if (why) td.title = why;
        }
        tr.append(td);
      }
      tb.append(tr);
    }
    tt.append(tb);
    chart("trend-chart", {
      type: "bar",
      data: { labels, datasets: series.map(([k, c], i) => ({ label: t(k), data: o.buckets.map(b => num(b[c])), backgroundColor: palette[i] })) },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    const times = [["trend.medianAccept", "median", "toAccept"], ["trend.p90Accept", "p90", "toAccept"],
      ["trend.medianComplete", "median", "toComplete"], ["trend.p90Complete", "p90", "toComplete"]];
    chart("times-chart", {
      type: "line",
      data: { labels, datasets: times.map(([k, a, b], i) => ({ label: t(k), data: o.buckets.map(x => num(x[a][b])), borderColor: palette[i], backgroundColor: palette[i], spanGaps: true })) },
      options: { scales: { y: { beginAtZero: true } } }
    });
    document.body.dataset.rows = String(o.buckets.length);
  }

  // ---- Caso ----
  function caseInit() {
    document.getElementById("case").value = rp.get("case") || "";
    document.getElementById("case-form").addEventListener("submit", ev => {
      ev.preventDefault();
      const q = new URLSearchParams();
      q.set("case", document.getElementById("case").value);
      history.replaceState(null, "", "/caso?" + q.toString());
      load();
    });
  }
  // a download of the message's evidence bundle (referrals, updates, notes)
  function evidenceCell(e) {
    if (!e.messageId) return el("td");
    const q = new URLSearchParams({ sender: e.sender, id: e.messageId });
    const a = el("a", { href: "/api/evidence?" + q.toString(), download: "", cls: "evidence",
      text: t("case.download"), title: t("case.downloadHint") });
    a.addEventListener("click", ev => { ev.preventDefault(); evidence(a); });
    return el("td", {}, a);
  }
  // the bundle is fetched first: a browser told 404 by a download link
  // says only "failed", and the reason (not delivered yet, no checkpoint
  // yet) is what the auditor needs to read
  async function evidence(a) {
    const err = document.getElementById("report-error");
    err.textContent = "";
    try {
      const r = await fetch(a.getAttribute("href"), { cache: "no-store" });
      if (r.status === 401) { signIn(); return; }
      if (!r.ok) {
        err.textContent = t("case.noBundle") + " " + (r.status === 404 ? t("case.noBundleWhy") + " " : "") +
          detail(r, await r.text());
        return;
      }
      const cd = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
      const url = URL.createObjectURL(await r.blob());
      const d = el("a", { href: url, download: cd ? cd[1] : "evidence.json" });
      document.body.append(d);
      d.click();
      d.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (e) {
      err.textContent = t("case.noBundle") + " " + t("err.network");
    }
  }
  function drawCase(o) {
    document.getElementById("who").textContent = (o.names[o.party] || o.party);
    const tz = o.timeZone;
    // "each verified" only when each is: else how many verified, how many
    // wait for the next checkpoint, how many failed
    const ok = o.entries.filter(e => e.proof === "verified").length;
    const wait = o.entries.filter(e => e.proof === "pending").length;
    const size = o.checkpointSize != null ? o.checkpointSize : "?";
    document.getElementById("case-summary").textContent = !o.entries.length ? t("case.none")
      : ok === o.entries.length ? t("case.summary", { n: o.entries.length, size })
      : t("case.summaryMixed", { n: o.entries.length, size, ok, wait, bad: o.entries.length - ok - wait });
    const tb = clear("case-table");
    tb.append(el("thead", {}, el("tr", {}, ...["case.when", "case.entry", "case.kind", "case.fromto", "case.referral",
      "case.status", "case.proof", "case.evidence"].map(k => el("th", { text: t(k) })))));
    const body = el("tbody");
    for (const e of o.entries) {
      const ok = e.proof === "verified", wait = e.proof === "pending";
      const proof = el("td", { cls: ok ? "proof-ok" : wait ? "proof-wait" : "proof-bad", "data-proof": e.proof,
        text: t(ok ? "case.verified" : wait ? "case.pending" : "case.failed") });
      if (e.proofProblem) proof.title = e.proofProblem;
      const ft = el("td", {}, named(o.names, e.sender));
      if (e.recipient) ft.append(" → ", named(o.names, e.recipient));
      body.append(el("tr", { "data-index": String(e.index) }, el("td", { text: when(e.loggedAt, tz) }),
        el("td", { cls: "n", text: "#" + e.index }), el("td", { text: t("kind." + e.kind) }), ft,
        el("td", {}, e.label ? el("abbr", { title: e.referralId || "", text: e.label }) : (e.referralId ? el("span", { text: "—", title: e.referralId }) : "")),
        el("td", { text: e.status ? statusWord(e.status) : "" }), proof, evidenceCell(e)));
    }
    tb.append(body);
    document.body.dataset.rows = String(o.entries.length);
  }

  function keyCount(o) {
    return o.columns.filter(c => ["requester", "performer", "service", "ageBand", "status"].includes(c)).length;
  }

  function draw() {
    texts();
    if (!last) return;
    if (page === "salute") drawHealth(last);
    else if (page === "rapporto") drawReport(last);
    else if (page === "flussi") drawFlows(last);
    else if (page === "andamento") drawTrend(last);
    else if (page === "caso") drawCase(last);
    else drawOverview(last);
    document.getElementById("updated").textContent = t("updated", { t: clock(last.timeZone) });
    document.body.dataset.version = String(last.version != null ? last.version : (Date.now()));
    if (last.monitor && last.monitor.logSize !== undefined) document.body.dataset.logSize = String(last.monitor.logSize);
  }

  // the console's sentence: the catalogue's, in the page's language, for a
  // problem the answer names (X-Rete-Problem), then the console's own
  // (English, for whoever fixes it) without its program's name: what the
  // reader can do, and what IT needs to find the cause
  function detail(r, text) {
    const code = r.headers.get("X-Rete-Problem");
    const own = text.trim().replace(/^rete console: /, "");
    const forIT = own ? t("err.detail", { d: own }) : "";
    if (code && T.it["api." + code]) return (t("api." + code) + " " + forIT).trim();
    return forIT;
  }
  // an answer that is not ok, in words of the page's language first
  function problem(r, text) {
    const status = r.status;
    // a read the access record did not take: its own sentence says it all
    if (r.headers.get("X-Rete-Problem") === "record") return detail(r, text);
    const lead = status === 400 ? "err.request" : status === 403 ? "err.denied"
      : status === 502 || status === 503 ? "err.broker" : "err.other";
    return t(lead) + " " + detail(r, text);
  }

  // auto: a read the page makes by itself (at an update of its live
  // stream), not a person's action: it says so (X-Rete-Auto), and the
  // console neither counts it as use of the session (which then ends after
  // 30 minutes without an action, the page open or not) nor records every
  // one of them
  let loading = false, again = false, againAuto = true;
  async function load(auto) {
    if (loading) { again = true; againAuto = againAuto && !!auto; return; }
    loading = true;
    try {
      let url = page === "salute" ? "/api/health" : "/api/overview";
      if (page === "rapporto") {
        const q = reportQuery();
        q.set("lang", lang);
        url = "/api/report?" + q.toString();
      } else if (page === "flussi") {
        const q = periodQuery();
        q.set("by", "agency");
        q.set("lang", "en");
        url = "/api/report?" + q.toString();
      } else if (page === "andamento") {
        url = "/api/trend?" + periodQuery().toString();
      } else if (page === "caso") {
        const cid = document.getElementById("case").value;
        if (!cid) { loading = false; return; }
        url = "/api/case?case=" + encodeURIComponent(cid);
      }
      const r = await fetch(url, { cache: "no-store", headers: auto ? { "X-Rete-Auto": "1" } : {} });
      if (r.status === 401) { signIn(); return; }
      const err = document.getElementById("report-error");
      if (r.ok) { last = await r.json(); if (err) err.textContent = ""; draw(); }
      else if (err) err.textContent = problem(r, await r.text());
    } catch (e) { /* the stream's error shows it */ }
    loading = false;
    if (again) { const a = againAuto; again = false; againAuto = true; load(a); }
  }

  function live(state) {
    const e = document.getElementById("live");
    e.dataset.state = state;
    e.dataset.t = "live." + state;
    e.textContent = t("live." + state);
  }

  // the session ended (a logout elsewhere, 30 minutes idle, the account
  // deleted): to the sign-in page, which says so
  function signIn() { location.assign("/login?ended=1"); }

  // the live stream: the browser reconnects by itself after a network
  // error, but not after a refusal (401: signed out; 429 or 503: no stream
  // free now): then ask whether the session lives, and either sign in again
  // or open the stream again a little later, as the red dot says
  const asked = page === "rapporto" || page === "flussi" || page === "andamento" || page === "caso";
  function stream() {
    const es = new EventSource("/api/events");
    // the report is asked for, not pushed: the stream only says the link is up
    es.addEventListener("update", () => { live("on"); if (!asked) load(true); });
    es.onerror = () => {
      live("off");
      if (es.readyState !== EventSource.CLOSED) return;
      fetch("/api/overview", { cache: "no-store", headers: { "X-Rete-Auto": "1" } })
        .then(r => { if (r.status === 401) signIn(); else setTimeout(stream, 10000); },
          () => setTimeout(stream, 10000));
    };
  }

  document.getElementById("lang").addEventListener("click", () => {
    lang = lang === "it" ? "en" : "it";
    try { localStorage.setItem("rete.lang", lang); } catch (e) { /* not kept */ }
    const u = new URL(location.href);
    u.searchParams.set("lang", lang);
    history.replaceState(null, "", u);
    if (page === "rapporto") load(); else draw();
    for (const id in charts) charts[id].update();
  });

  texts();
  live("wait");
  if (page === "caso") caseInit();
  if (page === "rapporto") reportInit();
  if (page === "flussi" || page === "andamento") periodInit();
  load();
  stream();
})();
