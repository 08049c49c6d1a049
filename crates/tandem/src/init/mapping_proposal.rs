//! The field mapping `tandem init` proposes: the Jira fields it found matched with the other
//! system's fields by id, by name (case, spaces and punctuation ignored), or by a common
//! synonym (`Title` ↔ `Summary`, `Due date` ↔ `Deadline`), when their kinds can carry each
//! other's values. The person confirms or edits it; it is written as `fieldMappings.csv`.

use super::jira_probe::FieldInfo;
use tandem_core::mapping::FieldType;

/// One proposed row: `jiraField,externalField,both,type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub jira_id: String,
    pub jira_name: String,
    pub external_id: String,
    pub external_name: String,
    pub kind: FieldType,
}

/// Names that mean the same field in trackers, after [`normalise`].
const SYNONYMS: &[&[&str]] = &[
    &["summary", "title", "subject", "name", "headline"],
    &["description", "body", "details", "text", "content"],
    &["duedate", "due", "deadline", "dueon", "duedateat"],
    &["priority", "urgency"],
    &["labels", "tags", "keywords"],
    &["assignee", "assignedto", "owner"],
];

/// Lower case, letters and digits only: `Due date` and `due_date` are both `duedate`.
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn same_meaning(a: &FieldInfo, b: &FieldInfo) -> bool {
    if a.id == b.id {
        return true;
    }
    let (na, nb) = (normalise(&a.name), normalise(&b.name));
    let (ia, ib) = (normalise(&a.id), normalise(&b.id));
    if na == nb || ia == nb || na == ib {
        return true;
    }
    SYNONYMS.iter().any(|group| {
        (group.contains(&na.as_str()) || group.contains(&ia.as_str()))
            && (group.contains(&nb.as_str()) || group.contains(&ib.as_str()))
    })
}

/// The kind a pair is carried as, when the two kinds fit together: equal kinds, or rich
/// text on one side and plain text on the other (carried as rich text, which converts).
fn common_kind(a: FieldType, b: FieldType) -> Option<FieldType> {
    use FieldType::*;
    match (a, b) {
        _ if a == b => Some(a),
        (RichText, Text) | (Text, RichText) => Some(RichText),
        _ => None,
    }
}

/// Matches `jira` fields with `external` ones, in the order of `external`. Each field is used
/// at most once; `skip_jira` names Jira fields that must not be mapped (the link fields).
pub fn propose(jira: &[FieldInfo], external: &[FieldInfo], skip_jira: &[&str]) -> Vec<Pair> {
    let mut used: Vec<&str> = skip_jira.to_vec();
    let mut out = Vec::new();
    for ext in external {
        let Some(ext_kind) = ext.kind else { continue };
        if !usable_id(&ext.id) {
            continue;
        }
        let found = jira.iter().find_map(|j| {
            let kind = j.kind?;
            if used.contains(&j.id.as_str()) || !usable_id(&j.id) || !same_meaning(j, ext) {
                return None;
            }
            common_kind(kind, ext_kind).map(|k| (j, k))
        });
        if let Some((j, kind)) = found {
            used.push(&j.id);
            out.push(Pair {
                jira_id: j.id.clone(),
                jira_name: j.name.clone(),
                external_id: ext.id.clone(),
                external_name: ext.name.clone(),
                kind,
            });
        }
    }
    out
}

/// Ids written into the CSV as they are: no commas, quotes, `#` or spaces to escape.
pub fn usable_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
}

/// A name fit for a `#` comment line: one line, no control characters.
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `fieldMappings.csv`: a header, then each pair under a comment naming both fields.
pub fn render_csv(pairs: &[Pair], external_label: &str) -> String {
    let mut out = String::from(
        "# Field mapping written by `tandem init`: one Jira field and one field of the other\n\
         # system a line. Columns: jiraField, externalField, direction (both | to_jira |\n\
         # to_external), type (text | richtext | number | date | datetime | option |\n\
         # option_list | labels | user). Edit freely; `tandem check` validates it.\n\
         jiraField,externalField,direction,type\n",
    );
    for p in pairs {
        out.push_str(&format!(
            "# Jira \"{}\" <-> {external_label} \"{}\"\n{},{},both,{}\n",
            comment_text(&p.jira_name),
            comment_text(&p.external_name),
            p.jira_id,
            p.external_id,
            p.kind.as_str()
        ));
    }
    out
}

/// Parses a kind as mapping files spell it (`text`, `richtext`, `option_list`, …).
pub fn parse_kind(s: &str) -> Option<FieldType> {
    FieldType::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, name: &str, kind: Option<FieldType>) -> FieldInfo {
        FieldInfo {
            id: id.into(),
            name: name.into(),
            kind,
        }
    }

    #[test]
    fn names_synonyms_and_kinds_decide_the_pairs() {
        use FieldType::*;
        let jira = [
            f("summary", "Summary", Some(Text)),
            f("description", "Description", Some(RichText)),
            f("duedate", "Due date", Some(Date)),
            f("status", "Status", None),
            f("customfield_10050", "External ID", Some(Text)),
            f("customfield_1", "Customer Reference", Some(Text)),
            f("customfield_2", "Story Points", Some(Number)),
        ];
        let external = [
            f("1001", "Title", Some(Text)),
            f("1002", "Details", Some(Text)),
            f("1003", "Deadline", Some(Date)),
            f("1004", "customer_reference", Some(Text)),
            // Same name, but a date cannot carry story points.
            f("1005", "Story points", Some(Date)),
            f("1006", "Status", Some(Text)),
            f("1007", "External ID", Some(Text)),
        ];
        let pairs = propose(&jira, &external, &["customfield_10050"]);
        let got: Vec<(&str, &str, FieldType)> = pairs
            .iter()
            .map(|p| (p.jira_id.as_str(), p.external_id.as_str(), p.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("summary", "1001", Text),
                ("description", "1002", RichText),
                ("duedate", "1003", Date),
                ("customfield_1", "1004", Text),
            ]
        );
        let csv = render_csv(&pairs, "external");
        assert!(
            csv.contains("# Jira \"Summary\" <-> external \"Title\"\nsummary,1001,both,text\n"),
            "{csv}"
        );
        let mapping = tandem_core::mapping::parse_csv(&csv, "fieldMappings.csv").unwrap();
        assert_eq!(mapping.fields.len(), 4);
    }

    #[test]
    fn each_field_is_used_once() {
        use FieldType::*;
        let jira = [f("summary", "Summary", Some(Text))];
        let external = [f("a", "Title", Some(Text)), f("b", "Subject", Some(Text))];
        assert_eq!(propose(&jira, &external, &[]).len(), 1);
        assert_eq!(parse_kind("Option_List"), Some(OptionList));
        assert!(!usable_id("a,b"));
    }
}
