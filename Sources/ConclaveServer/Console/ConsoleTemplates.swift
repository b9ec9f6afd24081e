/// The console's pages (swift-mustache), and its one stylesheet.
///
/// Every page but `login` inherits `layout` (`{{<layout}}`), overriding its `title` and `main` blocks and, to mark
/// the current place in the navigation, one of the `nav…` blocks. Values are only ever written with `{{x}}`, which
/// escapes them for HTML. A section over an optional list that must show once, even when the list is empty, is
/// written `{{#count(list)}}…{{/count(list)}}`: nil skips it, any list (even an empty one) renders it once.
enum ConsoleTemplates {
    static let all: [String: String] = [
        "layout": layout,
        "login": login,
        "dashboard": dashboard,
        "users": users,
        "user": user,
        "confirm": confirm,
        "groups": groups,
        "group": group,
        "federation": federation,
        "audit": audit,
        "settings": settings,
        "error": error,
    ]

    /// Served at `/admin/static/console.css`.
    static let stylesheet = """
        :root {
          --fg: #1f2328; --muted: #57606a; --bg: #f6f7f9; --card: #fff; --line: #d0d7de;
          --accent: #0b5cad; --danger: #b42318; --focus: #0b5cad;
          --ok-bg: #e7f5ea; --ok-fg: #1a5c2e; --ok-line: #9fd3ad;
          --err-bg: #fdecea; --err-fg: #8a1c12; --err-line: #f1aca4;
        }
        * { box-sizing: border-box; }
        html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
        body {
          margin: 0; color: var(--fg); background: var(--bg);
          font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
        }
        a { color: var(--accent); }
        :focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
        .skip { position: absolute; left: -9999px; top: .5rem; background: #fff; padding: .5rem 1rem; z-index: 10; }
        .skip:focus { left: .5rem; }
        .visually-hidden {
          position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; border: 0;
          overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;
        }
        header.bar {
          display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem;
          padding: .75rem 1.5rem; background: #fff; border-bottom: 1px solid var(--line);
        }
        .brand { margin: 0; font-weight: 600; }
        .brand a { color: var(--fg); text-decoration: none; }
        .brand span { color: var(--muted); font-weight: 400; }
        nav ul { display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: 0; padding: 0; list-style: none; }
        nav a { display: inline-block; padding: .25rem 0; text-decoration: none; }
        nav a:hover, nav a[aria-current] { text-decoration: underline; text-underline-offset: .3em; }
        nav a[aria-current] { color: var(--fg); font-weight: 600; }
        .who { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem .75rem; margin-left: auto; }
        main { display: block; max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
        footer { max-width: 1100px; margin: 0 auto; padding: 0 1.5rem 2rem; color: var(--muted); font-size: .9rem; }
        h1 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 1rem; overflow-wrap: anywhere; }
        h2 { font-size: 1.2rem; line-height: 1.3; margin: 0 0 .75rem; }
        p { margin: 0 0 .75rem; }
        section { margin: 0 0 1.5rem; }
        section.card {
          background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 1rem 1.25rem;
        }
        section.card > :last-child, #verification > :last-child { margin-bottom: 0; }
        #verification { margin: 1rem 0 0; }
        .notice, .error { padding: .75rem 1rem; border: 1px solid; border-radius: 4px; overflow-wrap: anywhere; }
        .notice { background: var(--ok-bg); color: var(--ok-fg); border-color: var(--ok-line); }
        .error { background: var(--err-bg); color: var(--err-fg); border-color: var(--err-line); }
        label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
        input, select {
          display: block; width: 100%; max-width: 30rem; padding: .45rem .6rem; font: inherit; color: inherit;
          background: #fff; border: 1px solid #8c959f; border-radius: 4px;
        }
        .help { margin: .25rem 0 0; color: var(--muted); font-size: .9rem; }
        button {
          display: inline-block; margin-top: 1rem; padding: .45rem 1rem; font: inherit; font-weight: 600; color: #fff;
          background: var(--accent); border: 1px solid var(--accent); border-radius: 4px; cursor: pointer;
        }
        button:hover { filter: brightness(1.1); }
        button.danger { background: var(--danger); border-color: var(--danger); }
        a.danger { color: var(--danger); font-weight: 600; }
        form.inline { display: inline; }
        form.inline button { margin-top: 0; }
        .who button { color: var(--accent); background: #fff; padding: .3rem .75rem; }
        form.search { display: flex; flex-wrap: wrap; align-items: flex-end; gap: .5rem; margin: 0 0 1.25rem; }
        form.search label { width: 100%; margin-top: 0; }
        form.search input { flex: 1 1 14rem; }
        form.search button { margin-top: 0; }
        .actions { display: flex; flex-wrap: wrap; align-items: center; gap: .75rem 1.25rem; margin-top: 1rem; }
        .actions button { margin-top: 0; }
        .table-wrap { overflow-x: auto; margin: 0 0 1rem; border: 1px solid var(--line); border-radius: 6px; }
        table { width: 100%; border-collapse: collapse; background: var(--card); }
        th, td { padding: .5rem .75rem; text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); }
        th { background: #eef1f4; white-space: nowrap; }
        tbody tr:last-child td { border-bottom: 0; }
        td.empty { color: var(--muted); }
        code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
        td code, dd code { overflow-wrap: anywhere; }
        dl.stats {
          display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: 1rem; margin: 0;
        }
        dl.stats div { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; }
        dl.stats dt { color: var(--muted); font-size: .9rem; }
        dl.stats dd { margin: 0; font-size: 1.4rem; font-weight: 600; overflow-wrap: anywhere; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1.5rem; margin: 0 0 .75rem; }
        dl.facts dt { font-weight: 600; }
        dl.facts dd { margin: 0; overflow-wrap: anywhere; }
        ul.plain { margin: 0; padding-left: 1.25rem; }
        body.login main { max-width: 28rem; padding-top: 3rem; }
        body.login footer { max-width: 28rem; }
        @media (max-width: 640px) {
          header.bar { padding: .75rem 1rem; }
          .who { width: 100%; margin-left: 0; justify-content: space-between; }
          main { padding: 1rem; }
          footer { padding: 0 1rem 1.5rem; }
          h1 { font-size: 1.35rem; }
          section.card { padding: .75rem 1rem; }
          input, select { max-width: none; }
          dl.facts { grid-template-columns: 1fr; gap: 0; }
          dl.facts dd { margin-bottom: .5rem; }
          dl.stats { grid-template-columns: 1fr 1fr; gap: .5rem; }
          th, td { padding: .4rem .5rem; }
        }
        """

    /// The frame of every page but `login`: header, navigation, notices, `main` and footer.
    static let layout = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{$title}}{{chrome.title}}{{/title}} · {{chrome.network}} · Conclave console</title>
        <link rel="stylesheet" href="/admin/static/console.css">
        </head>
        <body>
        <a class="skip" href="#content">Skip to content</a>
        <header class="bar">
        <p class="brand"><a href="/admin/">{{chrome.network}}</a> <span>Conclave console</span></p>
        <nav aria-label="Console">
        <ul>
        <li><a href="/admin/"{{$navDashboard}}{{/navDashboard}}>Dashboard</a></li>
        {{#chrome.nav.users}}
        <li><a href="/admin/users"{{$navUsers}}{{/navUsers}}>Users</a></li>
        {{/chrome.nav.users}}
        {{#chrome.nav.groups}}
        <li><a href="/admin/groups"{{$navGroups}}{{/navGroups}}>Security groups</a></li>
        {{/chrome.nav.groups}}
        {{#chrome.nav.federation}}
        <li><a href="/admin/federation"{{$navFederation}}{{/navFederation}}>Federation</a></li>
        {{/chrome.nav.federation}}
        {{#chrome.nav.audit}}
        <li><a href="/admin/audit"{{$navAudit}}{{/navAudit}}>Audit log</a></li>
        {{/chrome.nav.audit}}
        {{#chrome.nav.settings}}
        <li><a href="/admin/settings"{{$navSettings}}{{/navSettings}}>Settings</a></li>
        {{/chrome.nav.settings}}
        </ul>
        </nav>
        <div class="who">
        <span id="signed-in-as">{{chrome.admin}} ({{chrome.role}})</span>
        <form class="inline" method="post" action="/admin/logout">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <button type="submit" id="sign-out">Sign out</button>
        </form>
        </div>
        </header>
        <main id="content">
        {{#chrome.notice}}
        <p class="notice" role="status" id="notice">{{.}}</p>
        {{/chrome.notice}}
        {{#chrome.error}}
        <p class="error" role="alert" id="error">{{.}}</p>
        {{/chrome.error}}
        {{$main}}{{/main}}
        </main>
        <footer>
        <p>The console never sees message content: messages are end-to-end encrypted between users' devices.</p>
        </footer>
        </body>
        </html>

        """

    /// The sign-in page: standalone, without the navigation.
    static let login = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Sign in · {{network}} · Conclave console</title>
        <link rel="stylesheet" href="/admin/static/console.css">
        </head>
        <body class="login">
        <header class="bar">
        <p class="brand">{{network}} <span>Conclave console</span></p>
        </header>
        <main id="content">
        <section class="card">
        <h1>Sign in</h1>
        {{#error}}
        <p class="error" role="alert" id="error">{{.}}</p>
        {{/error}}
        <form method="post" action="/admin/login" id="login-form">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label for="name">Name</label>
        <input id="name" name="name" type="text" value="{{name}}" autocomplete="username"
         autocapitalize="none" spellcheck="false">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password">
        <label for="code">Authenticator code (if you have set one up)</label>
        <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code">
        <button type="submit" id="sign-in">Sign in</button>
        </form>
        </section>
        </main>
        <footer>
        <p>The console never sees message content: messages are end-to-end encrypted between users' devices.</p>
        </footer>
        </body>
        </html>

        """

    static let dashboard = """
        {{<layout}}
        {{$title}}Dashboard{{/title}}
        {{$navDashboard}} aria-current="page"{{/navDashboard}}
        {{$main}}
        {{#body}}
        <h1>Dashboard</h1>
        <section aria-labelledby="summary-heading">
        <h2 id="summary-heading">Summary</h2>
        <dl class="stats">
        <div><dt>Users</dt><dd id="stat-users">{{users}}</dd></div>
        <div><dt>Suspended</dt><dd id="stat-suspended">{{suspended}}</dd></div>
        <div><dt>Devices</dt><dd id="stat-devices">{{devices}}</dd></div>
        <div><dt>Security groups</dt><dd id="stat-groups">{{groups}}</dd></div>
        <div><dt>Storage</dt><dd id="stat-storage">{{storage}}</dd></div>
        <div><dt>Health</dt><dd id="stat-health">{{health}}</dd></div>
        <div><dt>Version</dt><dd id="stat-version">{{version}}</dd></div>
        </dl>
        </section>
        {{#federation}}
        <section aria-labelledby="federation-heading">
        <h2 id="federation-heading">Federation</h2>
        <p>Mode: <strong>{{mode}}</strong>. Pinned peers: <strong>{{peers}}</strong>.
        {{#chrome.nav.federation}}<a href="/admin/federation">Federation settings</a>{{/chrome.nav.federation}}</p>
        </section>
        {{/federation}}
        {{#count(recent)}}
        <section aria-labelledby="recent-heading">
        <h2 id="recent-heading">Recent administrator actions</h2>
        <div class="table-wrap">
        <table aria-labelledby="recent-heading">
        <thead>
        <tr><th scope="col">Entry</th><th scope="col">Time</th><th scope="col">Administrator</th>
        <th scope="col">Action</th><th scope="col">Target</th><th scope="col">Change</th></tr>
        </thead>
        <tbody>
        {{#recent}}
        <tr><td>{{seq}}</td><td>{{at}}</td><td>{{actor}}</td><td>{{action}}</td><td>{{target}}</td><td>{{change}}</td></tr>
        {{/recent}}
        {{^recent}}
        <tr><td colspan="6" class="empty">No entries.</td></tr>
        {{/recent}}
        </tbody>
        </table>
        </div>
        {{#chrome.nav.audit}}
        <p><a href="/admin/audit">The whole audit log</a></p>
        {{/chrome.nav.audit}}
        </section>
        {{/count(recent)}}
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let users = """
        {{<layout}}
        {{$title}}Users{{/title}}
        {{$navUsers}} aria-current="page"{{/navUsers}}
        {{$main}}
        {{#body}}
        <h1>Users</h1>
        <form method="get" action="/admin/users" class="search" role="search">
        <label for="search">Search users</label>
        <input id="search" name="q" type="search" value="{{query}}">
        <button type="submit">Search</button>
        </form>
        <section aria-labelledby="users-heading">
        <h2 id="users-heading" class="visually-hidden">Accounts</h2>
        <div class="table-wrap">
        <table id="users-table" aria-labelledby="users-heading">
        <thead>
        <tr><th scope="col">Name</th><th scope="col">Security group</th><th scope="col">Status</th>
        <th scope="col">Devices</th></tr>
        </thead>
        <tbody>
        {{#users}}
        <tr><td><a href="{{url}}">{{name}}</a></td><td>{{group}}</td>
        <td>{{#suspended}}suspended{{/suspended}}{{^suspended}}active{{/suspended}}</td><td>{{devices}}</td></tr>
        {{/users}}
        {{^users}}
        <tr><td colspan="4" class="empty">No users match.</td></tr>
        {{/users}}
        </tbody>
        </table>
        </div>
        </section>
        {{#canManage}}
        <section class="card" aria-labelledby="add-user-heading">
        <h2 id="add-user-heading">Add a user</h2>
        <form method="post" action="/admin/users" id="add-user-form">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <label for="new-name">Name</label>
        <input id="new-name" name="name" type="text" autocomplete="off" autocapitalize="none" spellcheck="false">
        <label for="new-password">Initial password</label>
        <input id="new-password" name="password" type="password" autocomplete="new-password"
         aria-describedby="new-password-help">
        <p class="help" id="new-password-help">At least 8 characters.</p>
        <label for="new-group">Security group</label>
        <select id="new-group" name="group">
        {{#groups}}
        <option value="{{name}}">{{name}}</option>
        {{/groups}}
        </select>
        <button type="submit" id="add-user">Add user</button>
        </form>
        </section>
        {{/canManage}}
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let user = """
        {{<layout}}
        {{$title}}{{body.name}} · Users{{/title}}
        {{$navUsers}} aria-current="true"{{/navUsers}}
        {{$main}}
        {{#body}}
        <p><a href="/admin/users">All users</a></p>
        <h1>{{name}}</h1>
        <p id="user-status">Security group <strong>{{group}}</strong>.
        Status: <strong>{{#suspended}}suspended{{/suspended}}{{^suspended}}active{{/suspended}}</strong>.
        {{#sso}}Signs in through the identity provider.{{/sso}}</p>
        <section aria-labelledby="devices-heading">
        <h2 id="devices-heading">Devices</h2>
        <div class="table-wrap">
        <table id="devices-table" aria-labelledby="devices-heading">
        <thead>
        <tr><th scope="col">Device</th><th scope="col">Status</th><th scope="col">Created</th></tr>
        </thead>
        <tbody>
        {{#devices}}
        <tr><td><code>{{id}}</code></td><td>{{status}}</td><td>{{created}}</td></tr>
        {{/devices}}
        {{^devices}}
        <tr><td colspan="3" class="empty">No devices.</td></tr>
        {{/devices}}
        </tbody>
        </table>
        </div>
        </section>
        {{#canSupport}}
        <section class="card" aria-labelledby="support-heading">
        <h2 id="support-heading">Account</h2>
        {{^suspended}}
        <form method="post" action="{{base}}/suspend" class="inline">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <button type="submit" id="suspend">Suspend account</button>
        </form>
        {{/suspended}}
        {{#suspended}}
        <form method="post" action="{{base}}/unsuspend" class="inline">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <button type="submit" id="unsuspend">Unsuspend account</button>
        </form>
        {{/suspended}}
        <form method="post" action="{{base}}/password">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <label for="reset-password">New password</label>
        <input id="reset-password" name="password" type="password" autocomplete="new-password"
         aria-describedby="reset-password-help">
        <p class="help" id="reset-password-help">At least 8 characters.</p>
        <button type="submit" id="set-password">Set password</button>
        </form>
        <p class="actions"><a href="{{base}}/reset-devices" id="reset-devices" class="danger">Reset devices…</a></p>
        </section>
        {{/canSupport}}
        {{#canManage}}
        <section class="card" aria-labelledby="manage-heading">
        <h2 id="manage-heading">Security group and deletion</h2>
        <form method="post" action="{{base}}/group">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <label for="move-group">Security group</label>
        <select id="move-group" name="group">
        {{#groups}}
        <option value="{{name}}"{{#selected}} selected{{/selected}}>{{name}}</option>
        {{/groups}}
        </select>
        <button type="submit" id="move">Move</button>
        </form>
        <p class="actions"><a href="{{base}}/delete" id="delete-user" class="danger">Delete account…</a></p>
        </section>
        {{/canManage}}
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let confirm = """
        {{<layout}}
        {{$title}}Confirm{{/title}}
        {{$main}}
        {{#body}}
        <h1>{{question}}</h1>
        <section class="card" aria-labelledby="confirm-heading">
        <h2 id="confirm-heading" class="visually-hidden">Confirmation</h2>
        <p>{{detail}}</p>
        <form method="post" action="{{action}}" id="confirm-form">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <div class="actions">
        <button type="submit" id="confirm" class="danger">{{button}}</button>
        <a href="{{cancel}}" id="cancel">Cancel</a>
        </div>
        </form>
        </section>
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let groups = """
        {{<layout}}
        {{$title}}Security groups{{/title}}
        {{$navGroups}} aria-current="page"{{/navGroups}}
        {{$main}}
        {{#body}}
        <h1>Security groups</h1>
        <section aria-labelledby="groups-heading">
        <h2 id="groups-heading" class="visually-hidden">Groups and their policies</h2>
        <div class="table-wrap">
        <table id="groups-table" aria-labelledby="groups-heading">
        <thead>
        <tr><th scope="col">Name</th><th scope="col">Members</th><th scope="col">May message</th>
        <th scope="col">Federation</th><th scope="col">Message lifetime</th><th scope="col">Burn-on-read</th>
        <th scope="col">Files</th><th scope="col">Cipher suites</th></tr>
        </thead>
        <tbody>
        {{#groups}}
        <tr><td><a href="{{url}}">{{name}}</a></td><td>{{members}}</td><td>{{mayMessage}}</td><td>{{federation}}</td>
        <td>{{lifetime}}</td><td>{{burnOnRead}}</td><td>{{files}}</td><td>{{cipherSuites}}</td></tr>
        {{/groups}}
        {{^groups}}
        <tr><td colspan="8" class="empty">No security groups.</td></tr>
        {{/groups}}
        </tbody>
        </table>
        </div>
        </section>
        {{#canManage}}
        <section class="card" aria-labelledby="add-group-heading">
        <h2 id="add-group-heading">Create a security group</h2>
        <form method="post" action="/admin/groups" id="add-group-form">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <label for="group-name">Name</label>
        <input id="group-name" name="name" type="text" autocomplete="off" autocapitalize="none" spellcheck="false">
        <button type="submit" id="add-group">Create group</button>
        </form>
        </section>
        {{/canManage}}
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let group = """
        {{<layout}}
        {{$title}}{{body.name}} · Security groups{{/title}}
        {{$navGroups}} aria-current="true"{{/navGroups}}
        {{$main}}
        {{#body}}
        <p><a href="/admin/groups">All security groups</a></p>
        <h1>{{name}}</h1>
        {{#canManage}}
        <section class="card" aria-labelledby="policy-heading">
        <h2 id="policy-heading">Policy</h2>
        <form method="post" action="{{base}}" id="policy-form">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <input type="hidden" name="version" value="{{version}}">
        <label for="may-message">May message</label>
        <input id="may-message" name="may_message" type="text" value="{{mayMessage}}" aria-describedby="may-message-help">
        <p class="help" id="may-message-help">Security groups its members may share conversations with: G1,G2 or all.</p>
        <label for="federate">Federation</label>
        <input id="federate" name="federate" type="text" value="{{federate}}" aria-describedby="federate-help">
        <p class="help" id="federate-help">Networks its members may reach: none, all, or D1,D2.</p>
        <label for="ttl-min">Shortest message lifetime</label>
        <input id="ttl-min" name="ttl_min" type="text" value="{{ttlMin}}" aria-describedby="ttl-min-help">
        <p class="help" id="ttl-min-help">Shortest message lifetime allowed (30s, 15m, 2h, 7d, or off).</p>
        <label for="ttl-max">Longest message lifetime</label>
        <input id="ttl-max" name="ttl_max" type="text" value="{{ttlMax}}" aria-describedby="ttl-max-help">
        <p class="help" id="ttl-max-help">Longest message lifetime allowed (off: messages may be kept forever).</p>
        <label for="ttl-default">Default message lifetime</label>
        <input id="ttl-default" name="ttl_default" type="text" value="{{ttlDefault}}" aria-describedby="ttl-default-help">
        <p class="help" id="ttl-default-help">Lifetime of new conversations that name none (off: no expiry).</p>
        <label for="bor-max">Longest burn-on-read delay</label>
        <input id="bor-max" name="bor_max" type="text" value="{{borMax}}" aria-describedby="bor-max-help">
        <p class="help" id="bor-max-help">Longest burn-on-read delay allowed, or off to forbid burn-on-read.</p>
        <label for="files">Files</label>
        <select id="files" name="files" aria-describedby="files-help">
        <option value="on"{{#filesOn}} selected{{/filesOn}}>on</option>
        <option value="off"{{^filesOn}} selected{{/filesOn}}>off</option>
        </select>
        <p class="help" id="files-help">Whether members may share files.</p>
        <label for="max-file-size">Largest file</label>
        <input id="max-file-size" name="max_file_size" type="text" value="{{maxFileSize}}"
         aria-describedby="max-file-size-help">
        <p class="help" id="max-file-size-help">Largest file members may share: bytes, or with K, M, G (1024-based).</p>
        <label for="cipher-suites">Cipher suites</label>
        <select id="cipher-suites" name="cipher_suites" aria-describedby="cipher-suites-help">
        {{#suites}}
        <option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>
        {{/suites}}
        </select>
        <p class="help" id="cipher-suites-help">classical: suite 1 only; pq-preferred: hybrid post-quantum (X-Wing) when every
         member's devices support it; pq-required: post-quantum only. Existing conversations keep their suite until a member
         moves them (<code>conclave room set ROOM --cipher-suite pq</code>).</p>
        <button type="submit" id="save-policy">Save policy</button>
        </form>
        <p class="actions"><a href="{{base}}/delete" id="delete-group" class="danger">Delete group…</a></p>
        </section>
        {{/canManage}}
        {{^canManage}}
        <section class="card" aria-labelledby="policy-heading">
        <h2 id="policy-heading">Policy</h2>
        <dl class="facts">
        <dt>May message</dt><dd>{{mayMessage}}</dd>
        <dt>Federation</dt><dd>{{federate}}</dd>
        <dt>Shortest message lifetime</dt><dd>{{ttlMin}}</dd>
        <dt>Longest message lifetime</dt><dd>{{ttlMax}}</dd>
        <dt>Default message lifetime</dt><dd>{{ttlDefault}}</dd>
        <dt>Longest burn-on-read delay</dt><dd>{{borMax}}</dd>
        <dt>Files</dt><dd>{{#filesOn}}on{{/filesOn}}{{^filesOn}}off{{/filesOn}}</dd>
        <dt>Largest file</dt><dd>{{maxFileSize}}</dd>
        <dt>Cipher suites</dt><dd>{{cipherSuites}}</dd>
        </dl>
        </section>
        {{/canManage}}
        <section aria-labelledby="members-heading">
        <h2 id="members-heading">Members</h2>
        <ul id="members" class="plain">
        {{#members}}
        <li><a href="{{url}}">{{name}}</a></li>
        {{/members}}
        {{^members}}
        <li>No members.</li>
        {{/members}}
        </ul>
        </section>
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let federation = """
        {{<layout}}
        {{$title}}Federation{{/title}}
        {{$navFederation}} aria-current="page"{{/navFederation}}
        {{$main}}
        {{#body}}
        <h1>Federation</h1>
        <section class="card" aria-labelledby="own-heading">
        <h2 id="own-heading">This network</h2>
        <dl class="facts">
        <dt>Domain</dt><dd>{{ownDomain}}</dd>
        <dt>Key fingerprint</dt><dd><code id="own-fingerprint">{{ownFingerprint}}</code></dd>
        <dt>Mode</dt><dd id="current-mode">{{mode}}</dd>
        </dl>
        <p class="help">Give this key fingerprint to the administrators of the networks that pin this one.</p>
        </section>
        <section aria-labelledby="peers-heading">
        <h2 id="peers-heading">Peers</h2>
        <div class="table-wrap">
        <table id="peers-table" aria-labelledby="peers-heading">
        <thead>
        <tr><th scope="col">Domain</th><th scope="col">Server URL</th><th scope="col">Key fingerprint</th>
        {{#canManage}}<th scope="col"><span class="visually-hidden">Actions</span></th>{{/canManage}}</tr>
        </thead>
        <tbody>
        {{#peers}}
        <tr><td>{{domain}}</td><td>{{url}}</td><td><code>{{fingerprint}}</code></td>
        {{#canManage}}<td><a href="{{removeURL}}" class="danger remove-peer">Remove…<span class="visually-hidden">
        {{domain}}</span></a></td>{{/canManage}}</tr>
        {{/peers}}
        {{^peers}}
        <tr><td colspan="{{#canManage}}4{{/canManage}}{{^canManage}}3{{/canManage}}" class="empty">No peers.</td></tr>
        {{/peers}}
        </tbody>
        </table>
        </div>
        </section>
        {{#canManage}}
        <section class="card" aria-labelledby="mode-heading">
        <h2 id="mode-heading">Federation mode</h2>
        <form method="post" action="/admin/federation/mode">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <label for="mode">Mode</label>
        <select id="mode" name="mode" aria-describedby="mode-help">
        {{#modes}}
        <option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>
        {{/modes}}
        </select>
        <p class="help" id="mode-help">off: no federation; listed: pinned peers only; open: also unlisted networks,
        pinned on first contact.</p>
        <button type="submit" id="set-mode">Set mode</button>
        </form>
        </section>
        <section class="card" aria-labelledby="add-peer-heading">
        <h2 id="add-peer-heading">Pin a peer network</h2>
        <form method="post" action="/admin/federation/peers" id="add-peer-form">
        <input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <label for="peer-domain">Domain</label>
        <input id="peer-domain" name="domain" type="text" autocomplete="off" autocapitalize="none" spellcheck="false"
         aria-describedby="peer-domain-help">
        <p class="help" id="peer-domain-help">The peer's domain, e.g. globex.example.</p>
        <label for="peer-url">Server URL</label>
        <input id="peer-url" name="url" type="text" inputmode="url" autocomplete="off" aria-describedby="peer-url-help">
        <p class="help" id="peer-url-help">The peer server's URL, e.g. https://chat.globex.example.</p>
        <label for="peer-fingerprint">Key fingerprint</label>
        <input id="peer-fingerprint" name="fingerprint" type="text" autocomplete="off" spellcheck="false"
         aria-describedby="peer-fingerprint-help">
        <p class="help" id="peer-fingerprint-help">The peer's key fingerprint (sha256:…), as its administrator's
        console or <code>conclave admin network show</code> gives it.</p>
        <button type="submit" id="add-peer">Pin peer</button>
        </form>
        </section>
        {{/canManage}}
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let audit = """
        {{<layout}}
        {{$title}}Audit log{{/title}}
        {{$navAudit}} aria-current="page"{{/navAudit}}
        {{$main}}
        {{#body}}
        <h1>Audit log</h1>
        <section class="card" aria-labelledby="filter-heading">
        <h2 id="filter-heading">Filter</h2>
        <form method="get" action="/admin/audit" id="audit-filter">
        <label for="since">Since</label>
        <input id="since" name="since" type="text" value="{{since}}" aria-describedby="since-help">
        <p class="help" id="since-help">RFC 3339 time or an age such as 2h.</p>
        <label for="actor">Administrator</label>
        <input id="actor" name="actor" type="text" value="{{actor}}">
        <label for="action">Action</label>
        <input id="action" name="action" type="text" value="{{action}}">
        <button type="submit">Filter</button>
        </form>
        </section>
        <section class="card" aria-labelledby="verify-heading">
        <h2 id="verify-heading">Integrity</h2>
        <form method="get" action="/admin/audit">
        <input type="hidden" name="verify" value="1">
        <button type="submit" id="verify">Verify the audit log</button>
        </form>
        {{#verification}}
        <section id="verification">
        {{#intact}}
        <p class="notice" role="status">Audit log intact: {{entries}} entries, head {{head}}.</p>
        {{/intact}}
        {{^intact}}
        <p class="error" role="alert">Audit log BROKEN at entry {{brokenAt}}: {{problem}}</p>
        {{/intact}}
        </section>
        {{/verification}}
        </section>
        <section aria-labelledby="entries-heading">
        <h2 id="entries-heading">Entries</h2>
        {{#truncated}}
        <p class="help">Showing the newest 500 entries; narrow the filter to see older ones.</p>
        {{/truncated}}
        <div class="table-wrap">
        <table id="audit-table" aria-labelledby="entries-heading">
        <thead>
        <tr><th scope="col">Entry</th><th scope="col">Time</th><th scope="col">Administrator</th>
        <th scope="col">Action</th><th scope="col">Target</th><th scope="col">Change</th></tr>
        </thead>
        <tbody>
        {{#entries}}
        <tr><td>{{seq}}</td><td>{{at}}</td><td>{{actor}}</td><td>{{action}}</td><td>{{target}}</td><td>{{change}}</td></tr>
        {{/entries}}
        {{^entries}}
        <tr><td colspan="6" class="empty">No entries.</td></tr>
        {{/entries}}
        </tbody>
        </table>
        </div>
        </section>
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let settings = """
        {{<layout}}
        {{$title}}Settings{{/title}}
        {{$navSettings}} aria-current="page"{{/navSettings}}
        {{$main}}
        {{#body}}
        <h1>Settings</h1>
        <section class="card" aria-labelledby="network-heading">
        <h2 id="network-heading">Network</h2>
        {{#network}}
        <dl class="facts">
        <dt>Domain</dt><dd>{{domain}}</dd>
        <dt>Server URL</dt><dd>{{url}}</dd>
        <dt>Key fingerprint</dt><dd><code>{{fingerprint}}</code></dd>
        <dt>Storage</dt><dd>{{storage}}</dd>
        <dt>API version</dt><dd>{{apiVersion}}</dd>
        </dl>
        {{/network}}
        </section>
        <section class="card" aria-labelledby="sign-in-heading">
        <h2 id="sign-in-heading">Sign-in</h2>
        {{#sso}}
        <dl class="facts">
        <dt>Method</dt>
        <dd>{{#configured}}Single sign-on through {{issuer}}{{/configured}}{{^configured}}Passwords only{{/configured}}</dd>
        <dt>Password sign-in</dt><dd>{{#passwords}}allowed{{/passwords}}{{^passwords}}off{{/passwords}}</dd>
        </dl>
        {{/sso}}
        {{^sso}}<p>The sign-in settings are shown to owners.</p>{{/sso}}
        </section>
        <section aria-labelledby="limits-heading">
        <h2 id="limits-heading">Limits</h2>
        <div class="table-wrap">
        <table aria-labelledby="limits-heading">
        <thead>
        <tr><th scope="col">Limit</th><th scope="col">Value</th></tr>
        </thead>
        <tbody>
        {{#limits}}
        <tr><td>{{name}}</td><td>{{value}}</td></tr>
        {{/limits}}
        {{^limits}}
        <tr><td colspan="2" class="empty">No limits.</td></tr>
        {{/limits}}
        </tbody>
        </table>
        </div>
        </section>
        {{#count(administrators)}}
        <section aria-labelledby="administrators-heading">
        <h2 id="administrators-heading">Administrators</h2>
        <div class="table-wrap">
        <table aria-labelledby="administrators-heading">
        <thead>
        <tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Authenticator</th></tr>
        </thead>
        <tbody>
        {{#administrators}}
        <tr><td>{{name}}</td><td>{{role}}</td><td>{{#totp}}set up{{/totp}}{{^totp}}not set up{{/totp}}</td></tr>
        {{/administrators}}
        {{^administrators}}
        <tr><td colspan="3" class="empty">No administrators.</td></tr>
        {{/administrators}}
        </tbody>
        </table>
        </div>
        <p class="help">Add or remove administrators with <code>conclave admin … admin add|remove</code>.</p>
        </section>
        {{/count(administrators)}}
        {{#count(tokens)}}
        <section aria-labelledby="tokens-heading">
        <h2 id="tokens-heading">API tokens</h2>
        <div class="table-wrap">
        <table aria-labelledby="tokens-heading">
        <thead>
        <tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Created</th><th scope="col">Created by</th></tr>
        </thead>
        <tbody>
        {{#tokens}}
        <tr><td>{{name}}</td><td>{{role}}</td><td>{{created}}</td><td>{{createdBy}}</td></tr>
        {{/tokens}}
        {{^tokens}}
        <tr><td colspan="4" class="empty">No API tokens.</td></tr>
        {{/tokens}}
        </tbody>
        </table>
        </div>
        </section>
        {{/count(tokens)}}
        {{/body}}
        {{/main}}
        {{/layout}}

        """

    static let error = """
        {{<layout}}
        {{$title}}Error {{body.status}}{{/title}}
        {{$main}}
        {{#body}}
        <h1>Error {{status}}</h1>
        <p class="error" role="alert" id="error-message">{{message}}</p>
        <p><a href="/admin/">Back to the dashboard</a></p>
        {{/body}}
        {{/main}}
        {{/layout}}

        """
}
