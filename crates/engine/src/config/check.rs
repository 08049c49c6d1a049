//! The semantic pass: what serde cannot check (credentials for the chosen Jira flavour,
//! unique connection names, the operations of a custom REST system, ...).

use super::load::{config_dir, normalize};
use super::spans::SpanIndex;
use super::storage::resolve_storage_url;
use super::*;
use crate::secret::Secret;
use std::collections::HashMap;
use tandem_core::mapping::{self, Location};

/// Checks what serde cannot, reporting `(key path, message)`; on the way it resolves relative
/// paths (mapping files, the SQLite file) against the config's folder, since that is where
/// their existence is checked.
pub(super) fn check_semantics(
    config: &mut Config,
    spans: &SpanIndex<'_>,
    report: &mut impl FnMut(String, String),
) {
    let mut issue = |key: &str, msg: String| report(key.to_string(), msg);

    let w = &config.worker;
    if w.concurrency == 0 {
        issue("worker.concurrency", "must be at least 1".into());
    }
    if w.max_attempts == 0 {
        issue("worker.max_attempts", "must be at least 1".into());
    }
    if w.lease_seconds == 0 {
        issue("worker.lease_seconds", "must be at least 1".into());
    }
    if w.request_timeout_ms == Some(0) {
        issue("worker.request_timeout_ms", "must be at least 1".into());
    } else if let Some(ms) = w.request_timeout_ms
        && w.lease_seconds > 0
        && ms >= w.lease_seconds.saturating_mul(1000)
    {
        // A call still running when the lease ends lets another worker take the event.
        issue(
            "worker.request_timeout_ms",
            format!(
                "{ms} ms is not shorter than the lease (lease_seconds = {})",
                w.lease_seconds
            ),
        );
    }
    if w.backoff_base_ms > w.backoff_cap_ms {
        issue(
            "worker.backoff_base_ms",
            format!(
                "{} is larger than backoff_cap_ms ({})",
                w.backoff_base_ms, w.backoff_cap_ms
            ),
        );
    }
    let server = &config.server;
    if server.max_body_bytes == 0 {
        issue("server.max_body_bytes", "must be at least 1".into());
    }
    for (key, timeout) in [
        ("server.header_read_timeout", server.header_read_timeout),
        ("server.body_read_timeout", server.body_read_timeout),
        ("server.write_timeout", server.write_timeout),
    ] {
        // "0" means "off" elsewhere; here off would let one slow client hold a connection
        // for ever, so it is refused rather than honoured.
        if timeout.is_zero() {
            issue(
                key,
                "must be longer than 0: without it a client that stops sending holds its connection for ever".into(),
            );
        }
    }
    if !(1..=MAX_CONNECTIONS_LIMIT).contains(&server.max_connections) {
        issue(
            "server.max_connections",
            format!(
                "{} is out of range: expected 1 to {MAX_CONNECTIONS_LIMIT}",
                server.max_connections
            ),
        );
    }

    let dir = config_dir(&config.path).to_path_buf();
    config.storage.url = match resolve_storage_url(&config.storage.url, &dir) {
        Ok(url) => url,
        Err(msg) => {
            issue("storage.url", msg);
            config.storage.url.clone()
        }
    };

    if config.connections.is_empty() {
        issue(
            "connection",
            "at least one [[connection]] is required".into(),
        );
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, conn) in config.connections.iter_mut().enumerate() {
        let at = format!("connection[{i}]");
        let valid_name = !conn.name.is_empty()
            && conn
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_name {
            issue(
                &format!("{at}.name"),
                format!(
                    "`{}` is not a valid name: use a-z, 0-9, `_` and `-`",
                    conn.name
                ),
            );
        }
        if let Some(first) = seen.insert(conn.name.clone(), i) {
            issue(
                &format!("{at}.name"),
                format!(
                    "connection name `{}` is already used by connection[{first}]",
                    conn.name
                ),
            );
        }

        let has_file = spans.entries.contains_key(&format!("{at}.mapping"));
        let has_inline = spans.entries.contains_key(&format!("{at}.field"));
        match (has_file, has_inline) {
            (true, true) => issue(
                &format!("{at}.field"),
                "give either `mapping = \"file\"` or [[connection.field]] tables, not both".into(),
            ),
            (false, false) => issue(
                &at,
                "no field mapping: add `mapping = \"fieldMappings.csv\"` or [[connection.field]] tables".into(),
            ),
            _ => {}
        }
        match &mut conn.mapping {
            MappingSource::File(p) => {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext != "csv" && ext != "toml" {
                    issue(
                        &format!("{at}.mapping"),
                        format!(
                            "`{}`: a mapping file must end in .csv or .toml",
                            p.display()
                        ),
                    );
                }
                if p.is_relative() {
                    *p = normalize(&dir.join(&*p));
                }
                // Reported here, at the `mapping =` line, rather than as an unreadable file
                // with no line when the mappings are loaded.
                if !p.is_file() {
                    issue(
                        &format!("{at}.mapping"),
                        format!("mapping file `{}` not found", p.display()),
                    );
                }
            }
            MappingSource::Inline(fields) => {
                let file = config.path.display().to_string();
                for (j, (_, loc)) in fields.iter_mut().enumerate() {
                    let line = spans
                        .span_of(&format!("{at}.field[{j}]"))
                        .map(|s| mapping::line_at(spans.text, s.start))
                        .unwrap_or(0);
                    *loc = Location::new(file.clone(), line);
                }
            }
        }

        check_jira(&conn.jira, &format!("{at}.jira"), &mut issue);
        if conn.jira.dynamic_webhook_url.is_some()
            && conn
                .filter
                .jql
                .as_deref()
                .is_some_and(|q| !q.trim().is_empty())
        {
            // A dynamic webhook's jqlFilter only knows project/issuetype/status/... and the
            // worker scopes webhook events by project and issue type only, so extra JQL
            // would silently stop applying to webhook deliveries.
            issue(
                &format!("{at}.filter.jql"),
                "cannot be combined with jira.dynamic_webhook_url: a dynamic webhook filters \
                 only by project and issue type; use `projects`/`issue_types`, or an admin \
                 webhook (`tandem jira webhook register`)"
                    .into(),
            );
        }
        match &mut conn.external {
            ExternalConfig::Jira(j) => {
                check_jira(j, &format!("{at}.external"), &mut issue);
                if j.dynamic_webhook_url.is_some() {
                    issue(
                        &format!("{at}.external.dynamic_webhook_url"),
                        "dynamic webhooks are only registered for [connection.jira]".into(),
                    );
                }
            }
            ExternalConfig::Rest(r) => {
                r.key_lines = spans.key_lines(&format!("{at}.external"), &config.path);
                check_rest(r, conn.create, &format!("{at}.external"), &mut issue)
            }
        }
    }
}

fn check_url(url: &str, key: &str, issue: &mut impl FnMut(&str, String)) {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace);
    if !ok {
        issue(key, format!("`{url}` is not an http:// or https:// URL"));
    }
}

fn check_jira(j: &JiraConfig, at: &str, issue: &mut impl FnMut(&str, String)) {
    check_url(&j.base_url, &format!("{at}.base_url"), issue);
    match j.api {
        JiraApi::Cloud if j.oauth_token.as_ref().is_some_and(|t| !t.is_empty()) => {
            if j.api_token.is_some() {
                issue(
                    &format!("{at}.api_token"),
                    "give either `oauth_token` or `email` + `api_token`, not both".into(),
                );
            }
            if j.pat.is_some() {
                issue(
                    &format!("{at}.pat"),
                    "`pat` is for api = \"datacenter\"; cloud uses oauth_token".into(),
                );
            }
        }
        JiraApi::Cloud => {
            if j.email.as_deref().is_none_or(str::is_empty) {
                issue(
                    &format!("{at}.email"),
                    "api = \"cloud\" needs `email` (Basic auth with e-mail and API token)".into(),
                );
            }
            if j.api_token.as_ref().is_none_or(Secret::is_empty) {
                issue(
                    &format!("{at}.api_token"),
                    "api = \"cloud\" needs `api_token`".into(),
                );
            }
            if j.pat.is_some() {
                issue(
                    &format!("{at}.pat"),
                    "`pat` is for api = \"datacenter\"; cloud uses email + api_token".into(),
                );
            }
        }
        JiraApi::Datacenter => {
            if j.pat.as_ref().is_none_or(Secret::is_empty) {
                issue(
                    &format!("{at}.pat"),
                    "api = \"datacenter\" needs `pat` (a personal access token)".into(),
                );
            }
            if j.api_token.is_some() {
                issue(
                    &format!("{at}.api_token"),
                    "`api_token` is for api = \"cloud\"; datacenter uses `pat`".into(),
                );
            }
            if j.oauth_token.is_some() {
                issue(
                    &format!("{at}.oauth_token"),
                    "`oauth_token` is for api = \"cloud\"; datacenter uses `pat`".into(),
                );
            }
        }
    }
    if let Some(url) = &j.dynamic_webhook_url {
        let key = format!("{at}.dynamic_webhook_url");
        // Jira answers 403 to API tokens and PATs on /rest/api/3/webhook.
        if j.oauth_token.as_ref().is_none_or(Secret::is_empty) {
            issue(
                &key,
                "needs `oauth_token`: only OAuth 2.0 apps may register dynamic webhooks \
                 (with an API token, use `tandem jira webhook register` for an admin webhook)"
                    .into(),
            );
        }
        if let Err(e) = crate::connector::jira::admin::webhook_url(url, "x") {
            issue(&key, e);
        }
        // Jira never signs dynamic deliveries, so a secret would make Tandem refuse them all.
        if j.webhook_secret.as_ref().is_some_and(|s| !s.is_empty()) {
            issue(
                &format!("{at}.webhook_secret"),
                "cannot be used with dynamic_webhook_url: Jira does not sign dynamic webhook \
                 deliveries, so every one would be refused"
                    .into(),
            );
        }
    }
    if j.project.trim().is_empty() {
        issue(&format!("{at}.project"), "must not be empty".into());
    }
    if j.link_field.trim().is_empty() {
        issue(&format!("{at}.link_field"), "must not be empty".into());
    }
}

fn check_pointer(p: &str, key: &str, issue: &mut impl FnMut(&str, String)) {
    if let Err(msg) = crate::connector::rest::fields::check_pointer(p) {
        issue(key, msg);
    }
}

fn check_rest(
    r: &RestConfig,
    create: CreatePolicy,
    at: &str,
    issue: &mut impl FnMut(&str, String),
) {
    check_url(&r.base_url, &format!("{at}.base_url"), issue);
    match r.format {
        RestFormat::Seed => {
            for (key, present) in [
                ("operations", r.operations.is_some()),
                ("webhook", r.webhook.is_some()),
                ("fields", !r.fields.is_empty()),
            ] {
                if present {
                    issue(
                        &format!("{at}.{key}"),
                        "only used with format = \"custom\"".into(),
                    );
                }
            }
        }
        RestFormat::Custom => {
            let Some(ops) = &r.operations else {
                issue(
                    &format!("{at}.operations"),
                    "format = \"custom\" needs [connection.external.operations] (at least `update`)"
                        .into(),
                );
                return;
            };
            let ops_at = format!("{at}.operations");
            let all = [
                ("create", ops.create.as_ref()),
                ("update", Some(&ops.update)),
                ("fetch", ops.fetch.as_ref()),
                ("list_changed", ops.list_changed.as_ref()),
            ];
            for (name, op) in all {
                let Some(op) = op else { continue };
                let k = format!("{ops_at}.{name}");
                if !op.path.starts_with('/') {
                    issue(
                        &format!("{k}.path"),
                        format!("`{}` must start with `/`", op.path),
                    );
                }
                for (pk, p) in [
                    ("id_pointer", &op.id_pointer),
                    ("item_pointer", &op.item_pointer),
                    ("items_pointer", &op.items_pointer),
                    ("updated_pointer", &op.updated_pointer),
                ] {
                    if let Some(p) = p {
                        check_pointer(p, &format!("{k}.{pk}"), issue);
                    }
                }
                if name == "list_changed" {
                    if let Err(msg) = crate::connector::rest::since::SinceFormat::parse(
                        op.since_format.as_deref(),
                    ) {
                        issue(&format!("{k}.since_format"), msg);
                    }
                    if let Some(Err(msg)) = op.since_overlap.as_deref().map(parse_duration) {
                        issue(&format!("{k}.since_overlap"), msg);
                    }
                } else {
                    for (key, present) in [
                        ("since_format", op.since_format.is_some()),
                        ("since_overlap", op.since_overlap.is_some()),
                    ] {
                        if present {
                            issue(&format!("{k}.{key}"), "only used by `list_changed`".into());
                        }
                    }
                }
                if let Some(body) = &op.body
                    && !body.contains("{{fields}}")
                    && matches!(name, "create" | "update")
                {
                    issue(
                        &format!("{k}.body"),
                        "the body template must contain `{{fields}}`".into(),
                    );
                }
            }
            if !ops.update.path.contains("{id}") {
                issue(
                    &format!("{ops_at}.update.path"),
                    "must contain `{id}`".into(),
                );
            }
            if let Some(f) = &ops.fetch
                && !f.path.contains("{id}")
            {
                issue(
                    &format!("{ops_at}.fetch.path"),
                    "must contain `{id}`".into(),
                );
            }
            match &ops.create {
                Some(c) if c.id_pointer.is_none() => issue(
                    &format!("{ops_at}.create.id_pointer"),
                    "create needs `id_pointer`: where the new item's id is in the answer".into(),
                ),
                None if create.allows_create_on(tandem_core::Side::External) => issue(
                    &format!("{ops_at}.create"),
                    "create = \"both\" or \"to_external\" needs an `operations.create` call (or set create = \"to_jira\" / \"none\")".into(),
                ),
                _ => {}
            }
            if let Some(l) = &ops.list_changed {
                if l.items_pointer.is_none() {
                    issue(
                        &format!("{ops_at}.list_changed.items_pointer"),
                        "list_changed needs `items_pointer`".into(),
                    );
                }
                if l.id_pointer.is_none() {
                    issue(
                        &format!("{ops_at}.list_changed.id_pointer"),
                        "list_changed needs `id_pointer`".into(),
                    );
                }
            }
            if r.webhook_payload == WebhookPayload::IdOnly && ops.fetch.is_none() {
                issue(
                    &format!("{at}.webhook_payload"),
                    "\"id_only\" needs an `operations.fetch` call to read the item".into(),
                );
            }
            if let Some(w) = &r.webhook {
                check_pointer(&w.id_pointer, &format!("{at}.webhook.id_pointer"), issue);
                if let Some(p) = &w.event_pointer {
                    check_pointer(p, &format!("{at}.webhook.event_pointer"), issue);
                }
            }
            let mut ids = HashMap::new();
            for (i, f) in r.fields.iter().enumerate() {
                let k = format!("{at}.fields[{i}]");
                if let Some(prev) = ids.insert(f.id.as_str(), i) {
                    issue(
                        &format!("{k}.id"),
                        format!("field `{}` is already described by fields[{prev}]", f.id),
                    );
                }
                if f.read.trim_start().starts_with('$') {
                    if let Err(e) = serde_json_path::JsonPath::parse(f.read.trim()) {
                        issue(&format!("{k}.read"), format!("invalid JSONPath: {e}"));
                    }
                } else {
                    check_pointer(f.read.trim(), &format!("{k}.read"), issue);
                }
                match &f.write {
                    Some(w) => check_pointer(w, &format!("{k}.write"), issue),
                    None if !f.read.starts_with('/') => issue(
                        &format!("{k}.write"),
                        "`read` is a JSONPath, so `write` (a JSON Pointer) is required".into(),
                    ),
                    None => {}
                }
            }
        }
    }
}
