//! GitLab. Two forms:
//! - the secret token: `X-Gitlab-Token: <the secret itself>`, compared in constant time;
//! - the signing token (Standard Webhooks form): `webhook-signature: v1,<base64>` over
//!   `"{webhook-id}.{webhook-timestamp}.{body}"` with a `whsec_` secret. Used when present.
//!
//! **Replay id:** `Idempotency-Key`, which GitLab documents as the same on every retry of one
//! event (GitLab 17.4 and later; the signing-token form's `webhook-id` equals it), and the
//! signed-bytes digest; without it, the digest only. `X-Gitlab-Event-UUID` is shared by recursive
//! hooks, so it only labels the event.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::standard_webhooks as sw;
use crate::ocsf::{self, str_at, Class, Draft, Input};
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Secret, Unverified};

pub struct Gitlab;

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| Box::new(Gitlab));

const TOKEN: &str = "x-gitlab-token";

fn signed(req: &Unverified) -> bool {
    req.headers.contains_key(sw::WEBHOOK.signature)
}

impl crate::verify::Scheme for Gitlab {
    fn prepare_key(&self, secret: &Secret) -> Result<Key, String> {
        // A whsec_ secret is a signing token; anything else is a plain secret token.
        if secret.expose().starts_with(b"whsec_") {
            sw::prepare(secret)
        } else {
            Ok(Key::plain(secret.expose()))
        }
    }

    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        if signed(req) {
            return sw::claim(req, &sw::WEBHOOK);
        }
        let token = verify::required_header(req, TOKEN)?;
        Ok(Claim {
            check: Check::Token {
                presented: token.as_bytes(),
            },
        })
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        if signed(req) {
            return sw::facts(req, &sw::WEBHOOK);
        }
        Ok(Facts {
            id: verify::id_header(req, "idempotency-key")?,
            label: verify::id_header(req, "x-gitlab-event-uuid")?,
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        let mut h = if key.raw().starts_with(b"whsec_") {
            sw::sign(key, &sw::WEBHOOK, body, ts, id)
        } else {
            vec![(
                TOKEN.into(),
                String::from_utf8_lossy(key.raw()).into_owned(),
            )]
        };
        h.push(("idempotency-key".into(), id.into()));
        h.push(("x-gitlab-event".into(), "Vulnerability Hook".into()));
        h
    }
}

impl crate::ocsf::Normalizer for Gitlab {
    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "object_kind": "vulnerability",
            "object_attributes": {"id": id, "title": "SQL injection in /search", "severity": "high",
                                  "state": "detected", "report_type": "sast"},
            "project": {"path_with_namespace": "acme/api"}
        })
        .to_string()
    }

    /// By `object_kind` (project and group webhooks) or `event_name` (system hooks):
    /// vulnerabilities are Detection Findings, failed sign-ins Authentication, user lifecycle
    /// Account Change, everything else API Activity.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let j = input.json_object()?;
        let kind = str_at(j, &["object_kind"])
            .or(str_at(j, &["event_name"]))
            .ok_or("neither object_kind nor event_name: the event kind is unknown")?;
        let draft = match kind {
            "vulnerability" => vulnerability(j)?,
            "user_failed_login" => failed_login(j),
            "user_create" | "user_destroy" | "user_rename" => account_change(kind, j),
            _ => api_activity(kind, j),
        };
        Ok(vec![draft])
    }
}

/// A GitLab timestamp: RFC 3339, or the older `2013-12-03 17:23:34 UTC` form.
fn time(v: &Value) -> Option<i64> {
    if let Some(t) = ocsf::time_of(v) {
        return Some(t);
    }
    let s = v.as_str()?.strip_suffix(" UTC")?;
    let (date, clock) = s.split_once(' ')?;
    ocsf::time_of(&Value::String(format!("{date}T{clock}Z")))
}

/// The event's own time: the object's last change, else the hook's.
fn event_time(j: &Value) -> Option<i64> {
    let oa = &j["object_attributes"];
    time(&oa["updated_at"])
        .or_else(|| time(&oa["created_at"]))
        .or_else(|| time(&j["updated_at"]))
        .or_else(|| time(&j["created_at"]))
}

fn id_text(v: &Value) -> Value {
    match v {
        Value::Number(n) => n.to_string().into(),
        Value::String(_) => v.clone(),
        _ => Value::Null,
    }
}

/// The project (or, for group hooks, the group) the event is about.
fn target(j: &Value) -> Value {
    let p = &j["project"];
    let project = ocsf::compact(json!({
        "type": "Project",
        "name": p["path_with_namespace"].as_str().or(str_at(j, &["path_with_namespace"])).or(str_at(j, &["project_path_with_namespace"])),
        "uid": id_text(if p["id"].is_null() { &j["project_id"] } else { &p["id"] }),
    }));
    if project.get("name").is_some() || project.get("uid").is_some() {
        return project;
    }
    let group = ocsf::compact(json!({
        "type": "Group",
        "name": j["group"]["full_path"].as_str().or(str_at(j, &["group_path"])).or(str_at(j, &["full_path"])),
        "uid": id_text(if j["group"]["group_id"].is_null() { &j["group_id"] } else { &j["group"]["group_id"] }),
    }));
    if group.get("name").is_some() || group.get("uid").is_some() {
        group
    } else {
        Value::Null
    }
}

/// A user from a `user` object or from `user_*` members at the top level.
fn user_of(j: &Value) -> Value {
    let u = &j["user"];
    if u.is_object() {
        return ocsf::compact(json!({
            "name": u["username"],
            "full_name": u["name"],
            "email_addr": u["email"],
            "uid": id_text(&u["id"]),
        }));
    }
    ocsf::compact(json!({
        "name": j["user_username"].as_str().or(str_at(j, &["username"])),
        "full_name": j["user_name"].as_str().or(str_at(j, &["name"])),
        "email_addr": j["user_email"].as_str().or(str_at(j, &["email"])),
        "uid": id_text(&j["user_id"]),
    }))
}

/// Vulnerability events: GitLab's own severity (critical/high/medium/low/info/unknown); the
/// activity and status from the state.
fn vulnerability(j: &Value) -> Result<Draft, String> {
    let v = &j["object_attributes"];
    let project = target(j);
    let uid = str_at(v, &["url"])
        .map(str::to_string)
        .or_else(|| {
            let id = id_text(&v["id"]);
            let id = id.as_str()?;
            Some(match project["name"].as_str() {
                Some(p) => format!("{p}#{id}"),
                None => id.to_string(),
            })
        })
        .ok_or("vulnerability without url or id")?;
    let title = str_at(v, &["title"]).unwrap_or("GitLab vulnerability");
    let state = str_at(v, &["state"]).unwrap_or("");
    let (activity, status) = match state {
        "detected" => (1, Some((1, "New"))),
        "confirmed" => (2, Some((2, "In Progress"))),
        "dismissed" => (3, Some((3, "Suppressed"))),
        "resolved" => (3, Some((4, "Resolved"))),
        _ => (2, None),
    };
    let severity = ocsf::severity_of(&v["severity"]).unwrap_or(0);
    let cve = v["identifiers"].as_array().and_then(|ids| {
        ids.iter()
            .find(|i| {
                i["external_type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("cve"))
            })
            .and_then(|i| i["external_id"].as_str().or(i["name"].as_str()))
    });
    let mut resources = vec![project.clone()];
    if let Some(f) = str_at(v, &["location", "file"]) {
        resources.push(json!({"type": "File", "name": f}));
    }
    resources.retain(|r| !r.is_null());
    let place = project["name"]
        .as_str()
        .map(|p| format!(" in {p}"))
        .unwrap_or_default();
    let info = ocsf::compact(json!({
        "uid": uid,
        "title": title,
        "desc": v["description"],
        "types": v["report_type"].as_str().map(|t| vec![t]),
        "src_url": v["url"],
        "created_time": time(&v["created_at"]),
        "modified_time": time(&v["updated_at"]),
    }));
    let vulns = json!([ocsf::compact(json!({
        "title": title,
        "severity": crate::event::severity_name(severity),
        "cve": cve.map(|c| json!({"uid": c})),
    }))]);
    let dependency = &v["location"]["dependency"];
    Ok(Draft::new(
        Class::DetectionFinding,
        activity,
        format!("GitLab vulnerability {state}: {title}{place}"),
    )
    .severity(severity)
    .time(event_time(j))
    .field("finding_info", info)
    .field("status", status.map_or(Value::Null, |s| s.1.into()))
    .field("status_id", status.map_or(Value::Null, |s| s.0.into()))
    .field("resources", json!(resources))
    .field("vulnerabilities", vulns)
    .unmapped("state", v["state"].clone())
    .unmapped("report_type", v["report_type"].clone())
    .unmapped("severity_overridden", v["severity_overridden"].clone())
    .unmapped("package", dependency["package"]["name"].clone())
    .unmapped("package_version", dependency["version"].clone())
    .unmapped("confirmed_by_id", v["confirmed_by_id"].clone())
    .unmapped("dismissed_by_id", v["dismissed_by_id"].clone())
    .unmapped(
        "resolved_on_default_branch",
        v["resolved_on_default_branch"].clone(),
    ))
}

/// A system hook's failed sign-in: Low, or Medium when GitLab blocked the account for it.
fn failed_login(j: &Value) -> Draft {
    let user = user_of(j);
    let who = user["name"].as_str().unwrap_or("unknown user").to_string();
    let blocked = j["state"].as_str() == Some("blocked");
    Draft::new(
        Class::Authentication,
        1,
        format!("GitLab sign-in failed for {who}"),
    )
    .severity(if blocked { 3 } else { 2 })
    .time(event_time(j))
    .field("user", user)
    .field("status_id", 2.into())
    .field("status", "Failure".into())
    .field("service", json!({"name": "gitlab"}))
    .unmapped("state", j["state"].clone())
}

/// System hooks on user accounts. Low: creating or removing an account changes who has access.
fn account_change(kind: &str, j: &Value) -> Draft {
    let user = user_of(j);
    let who = user["name"].as_str().unwrap_or("unknown user").to_string();
    let (activity, verb) = match kind {
        "user_create" => (1, "created"),
        "user_destroy" => (6, "deleted"),
        _ => (99, "renamed"),
    };
    Draft::new(
        Class::AccountChange,
        activity,
        format!("GitLab user {who} {verb}"),
    )
    .severity(if activity == 99 { 1 } else { 2 })
    .time(event_time(j))
    .field("user", user)
    .unmapped("event_name", kind.into())
    .unmapped("old_username", j["old_username"].clone())
}

/// What was done: the object's `action`, else the hook's `event_name` when it says more than
/// the kind.
fn action(kind: &str, j: &Value) -> Option<String> {
    str_at(j, &["object_attributes", "action"])
        .or(str_at(j, &["event_name"]).filter(|e| *e != kind))
        .map(str::to_string)
}

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

fn activity_id(kind: &str, action: Option<&str>, j: &Value) -> u8 {
    if kind == "push" || kind == "tag_push" {
        return if j["before"] == ZERO_SHA {
            1
        } else if j["after"] == ZERO_SHA {
            4
        } else {
            3
        };
    }
    let a = action.unwrap_or(kind);
    if matches!(a, "open" | "opened" | "create" | "created")
        || a.ends_with("_create")
        || a.starts_with("user_add_to_")
    {
        1
    } else if matches!(a, "delete" | "deleted" | "destroy")
        || a.ends_with("_destroy")
        || a.starts_with("user_remove_from_")
    {
        4
    } else if matches!(
        a,
        "update"
            | "updated"
            | "reopen"
            | "close"
            | "merge"
            | "approved"
            | "unapproved"
            | "approval"
            | "unapproval"
    ) || a.ends_with("_update")
        || a.ends_with("_rename")
        || a.ends_with("_transfer")
        || a.starts_with("user_update_for_")
    {
        3
    } else {
        99
    }
}

/// Routine project activity is Informational; membership, access tokens, keys, and moving or
/// deleting projects and groups change who can reach what, so they are Low.
fn activity_severity(kind: &str, action: Option<&str>) -> u8 {
    let a = action.unwrap_or(kind);
    let access = kind == "access_token"
        || a.starts_with("user_add_to_")
        || a.starts_with("user_remove_from_")
        || a.starts_with("user_update_for_")
        || a.starts_with("key_")
        || matches!(
            a,
            "project_destroy" | "project_transfer" | "group_destroy" | "group_rename"
        );
    if access {
        2
    } else {
        1
    }
}

/// Small members worth keeping: top-level scalars, and a few of `object_attributes`.
fn details(j: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in j.as_object().into_iter().flatten() {
        if k.starts_with("user_")
            || matches!(
                k.as_str(),
                "object_kind" | "event_name" | "event_type" | "created_at" | "updated_at"
            )
        {
            continue;
        }
        match v {
            Value::String(s) if s.len() <= 200 => {}
            Value::Number(_) | Value::Bool(_) => {}
            _ => continue,
        }
        out.insert(k.clone(), v.clone());
    }
    let oa = &j["object_attributes"];
    for k in [
        "id",
        "iid",
        "title",
        "state",
        "status",
        "url",
        "source_branch",
        "target_branch",
        "ref",
        "merge_status",
    ] {
        if let Some(v) = oa.get(k).filter(|v| !v.is_null() && !v.is_object()) {
            out.insert(format!("object_{k}"), v.clone());
        }
    }
    out
}

/// Everything else: the actor is `user` (merge requests, issues, notes, pipelines ...) or the
/// `user_*` members of pushes; membership and other system hooks name the user acted on, not
/// who acted, so that user goes under `unmapped.member`.
fn api_activity(kind: &str, j: &Value) -> Draft {
    let action = action(kind, j);
    let operation = match &action {
        Some(a) => format!("{kind}.{a}"),
        None => kind.to_string(),
    };
    let actor_is_user =
        j["user"].is_object() || matches!(kind, "push" | "tag_push" | "repository_update");
    let user = user_of(j);
    let actor = if actor_is_user && user.as_object().is_some_and(|u| !u.is_empty()) {
        json!({ "user": user })
    } else {
        json!({"app_name": "gitlab"})
    };
    let target = target(j);
    let mut message = format!("GitLab {operation}");
    match (actor_is_user, user["name"].as_str()) {
        (true, Some(u)) => message.push_str(&format!(" by {u}")),
        (false, Some(u)) => message.push_str(&format!(" for {u}")),
        _ => {}
    }
    if let Some(t) = target["name"].as_str() {
        message.push_str(&format!(" in {t}"));
    }
    if let Some(r) = str_at(j, &["ref"]) {
        message.push_str(&format!(" ({r})"));
    }
    if let Some(t) = str_at(j, &["object_attributes", "title"]) {
        message.push_str(&format!(": {t}"));
    }
    let mut d = Draft::new(
        Class::ApiActivity,
        activity_id(kind, action.as_deref(), j),
        message,
    )
    .severity(activity_severity(kind, action.as_deref()))
    .time(event_time(j))
    .field("actor", actor)
    .field("api", json!({"operation": operation}))
    .field(
        "resources",
        if target.is_null() {
            Value::Null
        } else {
            json!([target])
        },
    )
    .unmapped("member", if actor_is_user { Value::Null } else { user });
    for (k, v) in details(j) {
        d = d.unmapped(&k, v);
    }
    if let Some(c) = j["commits"].as_array() {
        d = d.unmapped("commits_count", c.len().into());
    }
    d
}
