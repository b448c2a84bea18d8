// The report page's script: checks the charts were laid out, then runs the worklist (filter,
// sort, search and page the JSON rows; only one page of rows is ever in the document). Every
// text from the data goes in with textContent, never as markup.
(function () {
  "use strict";

  // Count the bars the browser actually laid out, per chart (read by the report's tests).
  var drawn = 0;
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    var n = 0;
    svg.querySelectorAll("rect.bar").forEach(function (rect) {
      var box = rect.getBBox();
      if (box.width > 0 && box.height > 0) { n += 1; }
    });
    svg.setAttribute("data-drawn", String(n));
    if (n > 0) { drawn += 1; }
  });
  document.body.setAttribute("data-charts-drawn", String(drawn));

  var holder = document.getElementById("worklist-data");
  var data = holder ? JSON.parse(holder.textContent) : null;
  var body = document.getElementById("worklist-rows");
  if (!data || !body) { document.body.setAttribute("data-worklist", "none"); return; }

  var PAGE_SIZE = 25;
  var F = {};
  data.fields.forEach(function (name, i) { F[name] = i; });
  var rows = data.rows;
  var rules = data.rules;
  // Words first, the severity's name after: the colour is never the only sign.
  var SEVERITY_WORDS = { block: "Must fix (block)", warn: "Should fix (warn)", info: "For info" };
  var DEFAULTS = { owner: "", partner: "", rule: "", severity: "", age: "", q: "",
                   sort: "severity", status: "open", page: "1" };
  var KEYS = Object.keys(DEFAULTS);
  var state = Object.assign({}, DEFAULTS);
  var view = null;
  var viewKey = "";
  var haystack = null;
  var renders = 0;

  function $(id) { return document.getElementById(id); }
  function all(selector, each) { document.querySelectorAll(selector).forEach(each); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function nameOf(list, i) { return i >= 0 ? list[i] : ""; }
  function reasonWords(row) {
    var rule = rules[row[F.rule]];
    var reason = row[F.reason];
    var words = rule.reasons && rule.reasons[reason];
    return words || (reason.charAt(0).toUpperCase() + reason.slice(1)).replace(/_/g, " ");
  }
  function linkOf(row) {
    var link = row[F.url];
    if (typeof link !== "number") { return link; }
    var parts = data.links[link];
    return parts ? parts[0] + row[F.record_id] + parts[1] : "";
  }
  function safeLink(url) { return /^https?:\/\/[^\s]+$/i.test(url || "") ? url : ""; }

  // -- the choices: selects filled from the data, state kept in the address's #hash ----------

  function fillSelect(select, values) {
    values.forEach(function (value) {
      var option = el("option", "", value[1]);
      option.value = value[0];
      select.appendChild(option);
    });
  }
  function byName(a, b) { return a[1].localeCompare(b[1]); }
  fillSelect($("f-owner"), data.owners.map(function (n) { return [n, n]; }).sort(byName));
  fillSelect($("f-partner"), data.partners.map(function (n) { return [n, n]; }).sort(byName));
  fillSelect($("f-rule"), rules.map(function (r) { return [r.id, r.title]; }).sort(byName));
  var statusCounts = [0, 0, 0];
  rows.forEach(function (row) { statusCounts[row[F.status]] += 1; });
  if (statusCounts[1] || statusCounts[2]) { $("status-filter").hidden = false; }

  var ownerIndex = indexOf(data.owners);
  var partnerIndex = indexOf(data.partners);
  var ruleIndex = indexOf(rules.map(function (r) { return r.id; }));
  function indexOf(list) {
    var out = Object.create(null);
    list.forEach(function (value, i) { out[value] = i; });
    return out;
  }

  function readHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    state = Object.assign({}, DEFAULTS);
    KEYS.forEach(function (key) {
      var value = params.get(key);
      if (value !== null) { state[key] = value; }
    });
    $("f-owner").value = state.owner;
    $("f-partner").value = state.partner;
    $("f-rule").value = state.rule;
    $("f-severity").value = state.severity;
    $("f-age").value = state.age;
    $("f-search").value = state.q;
    $("f-sort").value = state.sort;
    $("f-status").value = state.status;
  }
  function writeHash() {
    var params = new URLSearchParams();
    KEYS.forEach(function (key) {
      if (state[key] !== DEFAULTS[key]) { params.set(key, state[key]); }
    });
    var text = params.toString().replace(/\+/g, "%20");
    var target = text ? "#" + text : location.pathname + location.search;
    if (("#" + text) !== location.hash && (text || location.hash)) {
      history.replaceState(null, "", target);
    }
  }

  // -- filter and sort the rows (cached until a filter or the sort changes) -------------------

  function searchText(i) {
    if (haystack === null) {
      haystack = new Array(rows.length);
    }
    var text = haystack[i];
    if (text === undefined) {
      var row = rows[i];
      var rule = rules[row[F.rule]];
      text = haystack[i] = [
        row[F.message], row[F.record_name], row[F.record_id], nameOf(data.owners, row[F.owner]),
        nameOf(data.partners, row[F.partner]), nameOf(data.accounts, row[F.account]),
        rule.title, rule.id, reasonWords(row)
      ].join("\n").toLowerCase();
    }
    return text;
  }

  function select() {
    var owner = state.owner ? ownerIndex[state.owner] : null;
    var partner = state.partner ? partnerIndex[state.partner] : null;
    var rule = state.rule ? ruleIndex[state.rule] : null;
    var severity = state.severity ? data.severities.indexOf(state.severity) : null;
    var status = state.status === "all" ? null : data.statuses.indexOf(state.status);
    var age = parseInt(state.age, 10);
    var q = state.q.trim().toLowerCase();
    var out = [];
    for (var i = 0; i < rows.length; i += 1) {
      var row = rows[i];
      if (status !== null && row[F.status] !== status) { continue; }
      if (owner !== null && row[F.owner] !== owner) { continue; }
      if (partner !== null && row[F.partner] !== partner) { continue; }
      if (rule !== null && row[F.rule] !== rule) { continue; }
      if (severity !== null && row[F.severity] !== severity) { continue; }
      if (age >= 0 && !(row[F.age_days] > age)) { continue; }
      if (q && searchText(i).indexOf(q) < 0) { continue; }
      out.push(i);
    }
    return out;
  }

  function textKey(list, field) {
    return function (i) { return (nameOf(list, rows[i][field]) || "\uffff").toLowerCase(); };
  }
  var recordKey = function (i) {
    return (rows[i][F.record_name] || rows[i][F.record_id] || "").toLowerCase();
  };
  var SORTS = {
    severity: [num(F.severity, 1), num(F.age_days, -1)],
    age: [num(F.age_days, -1)],
    newest: [num(F.age_days, 1)],
    owner: [text(textKey(data.owners, F.owner)), num(F.severity, 1), num(F.age_days, -1)],
    partner: [text(textKey(data.partners, F.partner)), num(F.severity, 1), num(F.age_days, -1)],
    record: [text(recordKey), num(F.severity, 1)],
    rule: [text(function (i) { return rules[rows[i][F.rule]].title.toLowerCase(); }),
           num(F.severity, 1), num(F.age_days, -1)]
  };
  function num(field, direction) {
    return function (a, b) { return direction * (rows[a][field] - rows[b][field]); };
  }
  function text(key) {
    var cache = Object.create(null);
    function get(i) { var k = cache[i]; if (k === undefined) { k = cache[i] = key(i); } return k; }
    return function (a, b) { var x = get(a); var y = get(b); return x < y ? -1 : x > y ? 1 : 0; };
  }
  function order(indexes) {
    var keys = SORTS[state.sort] || SORTS.severity;
    indexes.sort(function (a, b) {
      for (var k = 0; k < keys.length; k += 1) {
        var d = keys[k](a, b);
        if (d) { return d; }
      }
      return a - b;
    });
    return indexes;
  }

  // -- one page of rows --------------------------------------------------------------------

  function cell(tr, className, child) {
    var td = el("td", className);
    if (child) { td.appendChild(child); }
    tr.appendChild(td);
    return td;
  }

  function renderRow(row) {
    var rule = rules[row[F.rule]];
    var severity = data.severities[row[F.severity]];
    var status = data.statuses[row[F.status]];
    var tr = el("tr", "sev-" + severity);

    var sev = cell(tr, "severity", el("span", "sev-label " + severity, SEVERITY_WORDS[severity]));
    if (status !== "open") {
      sev.appendChild(document.createElement("br"));
      var note = status === "exempt" ? "exempt" + (row[F.exemption_id] ? " (#" + row[F.exemption_id] + ")" : "")
                                     : "trial rule";
      sev.appendChild(el("span", "sev-label " + status, note));
    }

    var problem = cell(tr, "problem");
    problem.appendChild(el("b", "reason", reasonWords(row)));
    problem.appendChild(el("div", "message", row[F.message]));
    if (rule.remedy) { problem.appendChild(el("div", "todo", "What to do: " + rule.remedy)); }
    var why = el("details", "why");
    why.appendChild(el("summary", "", "Why: the doctrine"));
    if (rule.doctrine) { why.appendChild(el("blockquote", "doctrine", rule.doctrine)); }
    var named = rule.title === rule.id ? rule.id : rule.title + " (" + rule.id + ")";
    why.appendChild(el("small", "rule", "Rule: " + named));
    problem.appendChild(why);

    var name = row[F.record_name] || row[F.record_id];
    var type = data.types[row[F.record_type]] || "";
    var url = safeLink(linkOf(row));
    var record = cell(tr, "record");
    if (url) {
      var link = el("a", "deep-link", name);
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.title = "Open this " + type + " in the CRM";
      record.appendChild(link);
    } else {
      record.appendChild(el("span", "name", name));
    }
    record.appendChild(el("small", "", type + " " + row[F.record_id]));

    var owner = nameOf(data.owners, row[F.owner]);
    var ownerCell = cell(tr, "owner");
    if (owner) {
      var mine = el("a", "only-owner", owner);
      mine.href = "#owner=" + encodeURIComponent(owner);
      mine.title = "Show only " + owner + "'s deals";
      ownerCell.appendChild(mine);
    } else {
      ownerCell.textContent = "no owner";
    }
    cell(tr, "partner").textContent = nameOf(data.partners, row[F.partner]) || "—";
    cell(tr, "account").textContent = nameOf(data.accounts, row[F.account]) || "—";
    var age = cell(tr, "age", el("span", "days", row[F.age_days] === 1 ? "1 day" : row[F.age_days] + " days"));
    age.appendChild(el("small", "", "since " + row[F.first_seen]));
    return tr;
  }

  function render() {
    var key = KEYS.filter(function (k) { return k !== "page"; })
      .map(function (k) { return state[k]; }).join("\u0001");
    if (view === null || key !== viewKey) {
      view = order(select());
      viewKey = key;
    }
    var pages = Math.max(1, Math.ceil(view.length / PAGE_SIZE));
    var page = Math.min(Math.max(1, parseInt(state.page, 10) || 1), pages);
    state.page = String(page);
    var start = (page - 1) * PAGE_SIZE;
    var slice = view.slice(start, start + PAGE_SIZE);
    var fragment = document.createDocumentFragment();
    slice.forEach(function (i) { fragment.appendChild(renderRow(rows[i])); });
    if (!slice.length) {
      var empty = el("tr");
      var td = cell(empty, "empty", null);
      td.colSpan = 7;
      td.textContent = rows.length ? "No problem matches these filters." : "No open problems: nothing to fix.";
      fragment.appendChild(empty);
    }
    body.replaceChildren(fragment);
    var shown = view.length ? (start + 1).toLocaleString() + "–" + (start + slice.length).toLocaleString() : "0";
    var status = data.statuses.indexOf(state.status);
    var total = status < 0 ? rows.length : statusCounts[status];
    $("count").textContent = view.length.toLocaleString() + " of " + total.toLocaleString() +
      " problems match" + (state.owner ? " for " + state.owner : "") + "; showing " + shown + ".";
    var info = "Page " + page.toLocaleString() + " of " + pages.toLocaleString();
    all(".page-info", function (node) { node.textContent = info; });
    all(".pager .prev", function (node) { node.disabled = page <= 1; });
    all(".pager .next", function (node) { node.disabled = page >= pages; });
    document.querySelectorAll("#worklist-table th.sortable").forEach(function (th) {
      th.setAttribute("aria-sort", th.getAttribute("data-sort") === state.sort ? "descending" : "none");
    });
    body.setAttribute("data-matches", String(view.length));
    body.setAttribute("data-page", String(page));
    renders += 1;
    body.setAttribute("data-renders", String(renders));
    writeHash();
    document.body.setAttribute("data-worklist", "ready");
  }

  // -- wiring -------------------------------------------------------------------------------

  function bind(id, key, event) {
    $(id).addEventListener(event, function () {
      state[key] = $(id).value;
      state.page = "1";
      render();
    });
  }
  bind("f-owner", "owner", "change");
  bind("f-partner", "partner", "change");
  bind("f-rule", "rule", "change");
  bind("f-severity", "severity", "change");
  bind("f-sort", "sort", "change");
  bind("f-status", "status", "change");
  bind("f-age", "age", "change");
  var typing = 0;
  $("f-search").addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(function () {
      state.q = $("f-search").value;
      state.page = "1";
      render();
    }, 150);
  });
  $("f-clear").addEventListener("click", function () {
    history.replaceState(null, "", location.pathname + location.search);
    readHash();
    render();
  });
  function turn(step) {
    return function () {
      state.page = String((parseInt(state.page, 10) || 1) + step);
      render();
    };
  }
  all(".pager .prev", function (node) { node.addEventListener("click", turn(-1)); });
  all(".pager .next", function (node) { node.addEventListener("click", turn(1)); });
  document.querySelectorAll("#worklist-table th.sortable").forEach(function (th) {
    th.addEventListener("click", function () {
      state.sort = th.getAttribute("data-sort") === "age" && state.sort === "age" ? "newest"
        : th.getAttribute("data-sort");
      $("f-sort").value = state.sort;
      state.page = "1";
      render();
    });
  });
  window.addEventListener("hashchange", function () { readHash(); render(); });

  readHash();
  render();
})();
