//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`. The legacy SHA-1
//! `X-Hub-Signature` is never accepted. `X-GitHub-Delivery` (unsigned) is the delivery id.
//!
//! **Replay id:** `X-GitHub-Delivery`, the GUID GitHub documents for each delivery, and the
//! signed-bytes digest (the header is not signed).

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::ocsf::{self, at, str_at, Class, Draft, Input};
use crate::verify::{Descriptor, Extra, Field};

pub struct Github;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("x-hub-signature-256", "sha256=")
    .id(Field::header("x-github-delivery"))
    .extra(&[("x-github-event", Extra::Fixed("code_scanning_alert"))]);

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| super::described(SIGNATURE, Github));

impl crate::ocsf::Normalizer for Github {
    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "action": "created",
            "alert": {"number": 42, "rule": {"id": "js/sql-injection", "severity": "error",
                      "security_severity_level": "high", "description": "Database query built from user-controlled sources"},
                      "html_url": format!("https://github.com/acme/api/security/code-scanning/{id}")},
            "repository": {"full_name": "acme/api"},
            "sender": {"login": "octocat"}
        })
        .to_string()
    }

    /// By `X-GitHub-Event`: security alerts are Detection Findings, `ping` a Base Event, every
    /// other event API Activity by `sender`.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let j = input.json_object()?;
        let event = input
            .header("x-github-event")
            .ok_or("no X-GitHub-Event header: the event kind is unknown")?;
        let draft = match event {
            "ping" => ping(j),
            "code_scanning_alert" => code_scanning(j)?,
            "secret_scanning_alert" => secret_scanning(j)?,
            "dependabot_alert" => dependabot(j)?,
            "repository_vulnerability_alert" => repository_vulnerability(j)?,
            "security_advisory" => security_advisory(j)?,
            _ => api_activity(event, j),
        };
        Ok(vec![draft])
    }
}

fn ping(j: &Value) -> Draft {
    let hook = at(j, &["hook_id"]).cloned().unwrap_or(Value::Null);
    Draft::new(Class::Base, 0, format!("GitHub webhook ping (hook {hook})"))
        .severity(1)
        .unmapped("hook_id", hook)
        .unmapped("zen", j["zen"].clone())
        .unmapped("repository", j["repository"]["full_name"].clone())
        .unmapped("organization", j["organization"]["login"].clone())
}

/// `v` unless it is an empty string.
fn nonempty(v: &Value) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    }
}

/// What one kind of alert says; [`alert_draft`] adds what all of them share.
struct Alert<'v> {
    label: &'static str,
    event: &'static str,
    /// The alert object (the advisory itself for `security_advisory`).
    alert: &'v Value,
    title: Option<String>,
    desc: Option<String>,
    severity: u8,
    types: &'static str,
    /// The file the alert points at, when it points at one.
    file: Option<&'v str>,
    /// The finding's id when the alert has no `html_url` and no number.
    uid: Option<String>,
    /// The finding's page when the alert has no `html_url`.
    src_url: Option<String>,
}

/// The finding's activity from the webhook's `action`.
fn finding_activity(action: &str) -> u8 {
    match action {
        "created" | "create" | "reopened" | "reopen" | "reopened_by_user" | "auto_reopened"
        | "reintroduced" | "published" => 1,
        "fixed" | "dismissed" | "dismiss" | "resolved" | "resolve" | "closed_by_user"
        | "auto_dismissed" | "revoked" | "withdrawn" => 3,
        _ => 2,
    }
}

/// OCSF finding status from the alert's `state`.
fn finding_status(state: &str) -> Option<(u8, &'static str)> {
    match state {
        "open" => Some((1, "New")),
        "dismissed" | "auto_dismissed" => Some((3, "Suppressed")),
        "fixed" | "resolved" => Some((4, "Resolved")),
        _ => None,
    }
}

/// The latest of the alert's own timestamps: the change this delivery reports.
fn alert_time(alert: &Value) -> Option<i64> {
    [
        "created_at",
        "updated_at",
        "fixed_at",
        "dismissed_at",
        "resolved_at",
        "auto_dismissed_at",
        "published_at",
        "withdrawn_at",
    ]
    .iter()
    .filter_map(|k| ocsf::time_of(alert.get(*k)?))
    .max()
}

fn repository(j: &Value) -> Value {
    let r = &j["repository"];
    if !r.is_object() {
        return Value::Null;
    }
    let name = r["full_name"].as_str();
    let uid = r["id"].as_u64().map(|n| n.to_string());
    if name.is_none() && uid.is_none() {
        return Value::Null;
    }
    ocsf::compact(json!({"type": "Repository", "name": name, "uid": uid}))
}

fn alert_draft(a: Alert<'_>, j: &Value) -> Result<Draft, String> {
    let action = str_at(j, &["action"]).unwrap_or("");
    let repo = str_at(j, &["repository", "full_name"]);
    let number = at(a.alert, &["number"]).and_then(Value::as_u64);
    let html_url = str_at(a.alert, &["html_url"]);
    let uid = a
        .uid
        .or(html_url.map(str::to_string))
        .or_else(|| Some(format!("{}#{}", repo?, number?)))
        .ok_or_else(|| format!("{} without html_url or repository and number", a.event))?;
    let title = a
        .title
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| a.label.to_string());
    let message = match repo {
        Some(r) => format!("{} {action}: {title} in {r}", a.label),
        None => format!("{} {action}: {title}", a.label),
    };
    let info = ocsf::compact(json!({
        "uid": uid,
        "title": title,
        "desc": a.desc,
        "types": [a.types],
        "src_url": html_url.map(str::to_string).or(a.src_url),
        "created_time": ocsf::time_of(&a.alert["created_at"]).or(ocsf::time_of(&a.alert["published_at"])),
        "modified_time": a.alert.get("updated_at").and_then(ocsf::time_of),
    }));
    let mut resources: Vec<Value> = vec![repository(j)];
    if let Some(f) = a.file {
        resources.push(json!({"type": "File", "name": f}));
    }
    resources.retain(|r| !r.is_null());
    let status = str_at(a.alert, &["state"]).and_then(finding_status);
    Ok(
        Draft::new(Class::DetectionFinding, finding_activity(action), message)
            .severity(a.severity)
            .time(alert_time(a.alert))
            .field("finding_info", info)
            .field("status", status.map_or(Value::Null, |s| s.1.into()))
            .field("status_id", status.map_or(Value::Null, |s| s.0.into()))
            .field(
                "resources",
                if resources.is_empty() {
                    Value::Null
                } else {
                    Value::Array(resources)
                },
            )
            .unmapped("event", format!("{}.{action}", a.event).into())
            .unmapped("alert_number", number.into())
            .unmapped("sender", j["sender"]["login"].clone())
            .unmapped("organization", j["organization"]["login"].clone()),
    )
}

/// Code scanning: GitHub's `security_severity_level` (critical/high/medium/low) when the rule is
/// a security rule, else the rule's own level (error/warning/note).
fn code_scanning(j: &Value) -> Result<Draft, String> {
    let alert = &j["alert"];
    let rule = &alert["rule"];
    let severity = ocsf::severity_of(&rule["security_severity_level"])
        .or_else(|| match rule["severity"].as_str()? {
            "note" | "none" => Some(1),
            other => crate::event::severity_id(other),
        })
        .unwrap_or(0);
    let instance = &alert["most_recent_instance"];
    let title = str_at(rule, &["description"])
        .or(str_at(rule, &["name"]))
        .or(str_at(rule, &["id"]));
    let desc = str_at(rule, &["full_description"]).or(str_at(instance, &["message", "text"]));
    let d = alert_draft(
        Alert {
            label: "Code scanning alert",
            event: "code_scanning_alert",
            alert,
            title: title.map(str::to_string),
            desc: desc.map(str::to_string),
            severity,
            types: "Code Scanning",
            file: str_at(instance, &["location", "path"]),
            uid: None,
            src_url: None,
        },
        j,
    )?;
    let mut d = d
        .unmapped("tool", alert["tool"]["name"].clone())
        .unmapped("rule_severity", rule["severity"].clone())
        .unmapped("ref", nonempty(&j["ref"]))
        .unmapped("commit_oid", nonempty(&j["commit_oid"]))
        .unmapped("start_line", instance["location"]["start_line"].clone())
        .unmapped("dismissed_reason", alert["dismissed_reason"].clone());
    if let (Some(id), Some(Value::Object(info))) =
        (rule["id"].as_str(), d.fields.get_mut("finding_info"))
    {
        // Payloads without `rule.name` still name the analytic: by its description, else its id.
        let name = str_at(rule, &["name"])
            .or(str_at(rule, &["description"]))
            .unwrap_or(id);
        let analytic = json!({"uid": id, "name": name, "type": "Rule", "type_id": 1});
        info.insert("analytic".into(), analytic);
    }
    Ok(d)
}

/// Secret scanning: GitHub gives no severity. A committed credential is usable by anyone who can
/// read the repository until it is revoked, and its validity is often unknown, so every secret
/// alert is High.
fn secret_scanning(j: &Value) -> Result<Draft, String> {
    let alert = &j["alert"];
    let kind = str_at(alert, &["secret_type_display_name"])
        .or(str_at(alert, &["secret_type"]))
        .unwrap_or("secret");
    let mut desc = format!("Secret scanning found a {kind} in the repository");
    if let Some(v) = str_at(alert, &["validity"]) {
        desc.push_str(&format!("; validity: {v}"));
    }
    if let Some(r) = str_at(alert, &["resolution"]) {
        desc.push_str(&format!("; resolution: {r}"));
    }
    if let Some(c) = str_at(alert, &["resolution_comment"]).filter(|c| !c.is_empty()) {
        desc.push_str(&format!(" ({c})"));
    }
    let d = alert_draft(
        Alert {
            label: "Secret scanning alert",
            event: "secret_scanning_alert",
            alert,
            title: Some(format!("{kind} exposed")),
            desc: Some(desc),
            severity: 4,
            types: "Secret Scanning",
            file: None,
            uid: None,
            src_url: None,
        },
        j,
    )?;
    Ok(d.unmapped("secret_type", alert["secret_type"].clone())
        .unmapped("validity", alert["validity"].clone())
        .unmapped("resolution", alert["resolution"].clone())
        .unmapped("resolved_by", alert["resolved_by"]["login"].clone())
        .unmapped(
            "push_protection_bypassed",
            alert["push_protection_bypassed"].clone(),
        )
        .unmapped(
            "push_protection_bypassed_by",
            alert["push_protection_bypassed_by"]["login"].clone(),
        )
        .unmapped("publicly_leaked", alert["publicly_leaked"].clone()))
}

/// The advisory as an OCSF vulnerability (its CVE when it has one).
fn vulnerability(title: &Value, cve: Option<&str>, severity: u8) -> Value {
    let cve = cve.map(|c| json!({ "uid": c }));
    json!([ocsf::compact(json!({
        "title": title,
        "severity": crate::event::severity_name(severity),
        "cve": cve,
    }))])
}

/// Dependabot: the advisory's severity (low/medium/high/critical), else the vulnerable range's.
fn dependabot(j: &Value) -> Result<Draft, String> {
    let alert = &j["alert"];
    let advisory = &alert["security_advisory"];
    let vuln = &alert["security_vulnerability"];
    let severity = ocsf::severity_of(&advisory["severity"])
        .or_else(|| ocsf::severity_of(&vuln["severity"]))
        .unwrap_or(0);
    let d = alert_draft(
        Alert {
            label: "Dependabot alert",
            event: "dependabot_alert",
            alert,
            title: str_at(advisory, &["summary"]).map(str::to_string),
            desc: str_at(advisory, &["description"]).map(str::to_string),
            severity,
            types: "Dependabot",
            file: str_at(alert, &["dependency", "manifest_path"]),
            uid: None,
            src_url: None,
        },
        j,
    )?;
    let cve = str_at(advisory, &["cve_id"]);
    Ok(d.field(
        "vulnerabilities",
        vulnerability(&advisory["summary"], cve, severity),
    )
    .unmapped("ghsa_id", advisory["ghsa_id"].clone())
    .unmapped("package", package(&alert["dependency"]["package"]))
    .unmapped(
        "vulnerable_version_range",
        vuln["vulnerable_version_range"].clone(),
    )
    .unmapped(
        "first_patched_version",
        vuln["first_patched_version"]["identifier"].clone(),
    )
    .unmapped("dismissed_reason", alert["dismissed_reason"].clone()))
}

/// `ecosystem/name` of a package object.
fn package(p: &Value) -> Value {
    match (str_at(p, &["ecosystem"]), str_at(p, &["name"])) {
        (Some(e), Some(n)) => format!("{e}/{n}").into(),
        (None, Some(n)) => n.into(),
        _ => Value::Null,
    }
}

/// The older vulnerable-dependency alert: its own `severity` word.
fn repository_vulnerability(j: &Value) -> Result<Draft, String> {
    let alert = &j["alert"];
    let pkg = str_at(alert, &["affected_package_name"]).unwrap_or("a dependency");
    let range = str_at(alert, &["affected_range"]).unwrap_or("");
    let id = str_at(alert, &["external_identifier"]).or(str_at(alert, &["ghsa_id"]));
    let title = match id {
        Some(id) => format!("{id} in {pkg} {range}"),
        None => format!("Vulnerable {pkg} {range}"),
    };
    let desc =
        str_at(alert, &["fixed_in"]).map(|f| format!("{pkg} {range} is vulnerable; fixed in {f}"));
    let severity = ocsf::severity_of(&alert["severity"]).unwrap_or(0);
    let d = alert_draft(
        Alert {
            label: "Vulnerable dependency alert",
            event: "repository_vulnerability_alert",
            alert,
            title: Some(title.trim_end().to_string()),
            desc,
            severity,
            types: "Dependabot",
            file: None,
            uid: None,
            src_url: str_at(alert, &["external_reference"]).map(str::to_string),
        },
        j,
    )?;
    let cve = id.filter(|id| id.starts_with("CVE-"));
    Ok(d.field(
        "vulnerabilities",
        vulnerability(&title.trim_end().into(), cve, severity),
    )
    .unmapped("ghsa_id", alert["ghsa_id"].clone()))
}

/// A GitHub-reviewed advisory published, updated or withdrawn: a finding about the ecosystem,
/// not one repository; its id is the GHSA id.
fn security_advisory(j: &Value) -> Result<Draft, String> {
    let adv = &j["security_advisory"];
    let ghsa = str_at(adv, &["ghsa_id"]).ok_or("security_advisory without ghsa_id")?;
    let severity = ocsf::severity_of(&adv["severity"]).unwrap_or(0);
    let d = alert_draft(
        Alert {
            label: "Security advisory",
            event: "security_advisory",
            alert: adv,
            title: str_at(adv, &["summary"]).map(str::to_string),
            desc: str_at(adv, &["description"]).map(str::to_string),
            severity,
            types: "Security Advisory",
            file: None,
            uid: Some(ghsa.to_string()),
            src_url: Some(format!("https://github.com/advisories/{ghsa}")),
        },
        j,
    )?;
    let packages: Vec<Value> = adv["vulnerabilities"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|v| package(&v["package"]))
                .filter(|p| !p.is_null())
                .collect()
        })
        .unwrap_or_default();
    let cve = str_at(adv, &["cve_id"]);
    Ok(d.field(
        "vulnerabilities",
        vulnerability(&adv["summary"], cve, severity),
    )
    .unmapped("ghsa_id", ghsa.into())
    .unmapped(
        "packages",
        if packages.is_empty() {
            Value::Null
        } else {
            packages.into()
        },
    ))
}

/// Severity of audit events. Routine activity is Informational; changes to who can reach what
/// are Low; making code public, deleting a repository or a protection, or adding a deploy key
/// (a credential with repository access) are Medium.
fn activity_severity(event: &str, action: Option<&str>, j: &Value) -> u8 {
    if event == "push" && j["forced"] == Value::Bool(true) {
        return 2; // a force push rewrites history others may rely on
    }
    match (event, action) {
        ("repository", Some("publicized" | "deleted"))
        | ("branch_protection_rule" | "repository_ruleset", Some("deleted"))
        | ("deploy_key", Some("created")) => 3,
        (
            "member"
            | "membership"
            | "organization"
            | "team"
            | "team_add"
            | "deploy_key"
            | "branch_protection_rule"
            | "repository_ruleset"
            | "github_app_authorization"
            | "installation"
            | "installation_repositories"
            | "personal_access_token_request"
            | "org_block"
            | "security_and_analysis"
            | "repository",
            _,
        ) => 2,
        _ => 1,
    }
}

/// API Activity's activity from the `action` (or the event, for events without one).
fn activity_id(event: &str, action: Option<&str>) -> u8 {
    match action {
        Some(
            "created" | "added" | "opened" | "published" | "member_added" | "member_invited"
            | "invited",
        ) => 1,
        Some("deleted" | "removed" | "member_removed") => 4,
        Some(
            "edited" | "renamed" | "transferred" | "archived" | "unarchived" | "publicized"
            | "privatized" | "changed" | "updated" | "closed" | "reopened" | "synchronize"
            | "merged" | "suspend" | "unsuspend",
        ) => 3,
        Some(_) => 99,
        None => match event {
            "create" | "fork" => 1,
            "delete" => 4,
            "push" | "public" | "security_and_analysis" => 3,
            _ => 99,
        },
    }
}

/// Keys every event carries, placed elsewhere or left to `raw_data`.
const COMMON_KEYS: [&str; 6] = [
    "action",
    "sender",
    "repository",
    "organization",
    "installation",
    "enterprise",
];

/// A few identifying members of an object (never its whole content).
fn summary(o: &Map<String, Value>) -> Value {
    let picked: Map<String, Value> = [
        "id",
        "login",
        "name",
        "title",
        "slug",
        "role",
        "state",
        "permission",
        "read_only",
    ]
    .iter()
    .filter_map(|k| {
        Some((
            k.to_string(),
            o.get(*k)
                .filter(|v| !v.is_null() && !v.is_object())?
                .clone(),
        ))
    })
    .collect();
    if picked.is_empty() {
        // `changes` and the like: which members, not their values.
        o.keys()
            .cloned()
            .map(Value::String)
            .collect::<Vec<_>>()
            .into()
    } else {
        picked.into()
    }
}

/// Audit events: the actor is `sender`; the event's other top-level members are summarized
/// (scalars as they are, objects by their ids and names, arrays by their length).
fn api_activity(event: &str, j: &Value) -> Draft {
    let action = str_at(j, &["action"]);
    let operation = match action {
        Some(a) => format!("{event}.{a}"),
        None => event.to_string(),
    };
    let login = str_at(j, &["sender", "login"]);
    let actor = match login {
        Some(l) => ocsf::compact(
            json!({"user": {"name": l, "uid": j["sender"]["id"].as_u64().map(|n| n.to_string())}}),
        ),
        None => json!({"app_name": "github"}),
    };
    let target = str_at(j, &["repository", "full_name"]).or(str_at(j, &["organization", "login"]));
    let mut message = format!("GitHub {operation} by {}", login.unwrap_or("unknown"));
    if let Some(t) = target {
        message.push_str(&format!(" in {t}"));
    }
    if let Some(r) = str_at(j, &["ref"]) {
        message.push_str(&format!(" ({r})"));
    }
    let mut d = Draft::new(Class::ApiActivity, activity_id(event, action), message)
        .severity(activity_severity(event, action, j))
        .field("actor", actor)
        .field("api", json!({"operation": operation}))
        .field(
            "resources",
            match repository(j) {
                Value::Null => Value::Null,
                r => json!([r]),
            },
        )
        .unmapped("organization", j["organization"]["login"].clone())
        .unmapped("installation_id", j["installation"]["id"].clone());
    for (k, v) in j.as_object().into_iter().flatten() {
        if COMMON_KEYS.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::String(s) if s.len() <= 200 => d = d.unmapped(k, v.clone()),
            Value::Number(_) | Value::Bool(_) => d = d.unmapped(k, v.clone()),
            Value::Object(o) => d = d.unmapped(k, summary(o)),
            Value::Array(a) => d = d.unmapped(&format!("{k}_count"), a.len().into()),
            _ => {}
        }
    }
    d
}
