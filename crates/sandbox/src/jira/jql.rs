//! A small JQL: tokenizer, recursive-descent parser, field binding and evaluation.
//!
//! It covers what a sync engine and its webhook filters send (project, issuetype, key,
//! status, priority, labels, assignee, dates with absolute and relative values, text search
//! with `~`, select and number custom fields, `IS [NOT] EMPTY`, `IN`, `AND`/`OR`/`NOT`,
//! parentheses and `ORDER BY`) and, just as important, rejects what Jira rejects with Jira's
//! messages: `=` on a text field, `customfield_NNN` as a clause name, unknown values.
//! Every failure is an `Err(message)`; nothing here panics on input.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use super::model::{self, FieldDef, Issue, Kind, Project, User};

/// A parse error is prefixed like Jira's: "Error in the JQL Query: ...".
fn syntax(msg: String, pos: usize) -> String {
    format!(
        "Error in the JQL Query: {msg} (line 1, character {})",
        pos + 1
    )
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Unquoted word (field name, value, keyword, relative date, `cf[10050]`).
    Word(String),
    /// Quoted string, unescaped.
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Word(w) => w.clone(),
            Tok::Str(s) => s.clone(),
            Tok::Op(o) => (*o).to_string(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Comma => ",".into(),
        }
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::LParen, start));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, start));
                i += 1;
            }
            ',' => {
                out.push((Tok::Comma, start));
                i += 1;
            }
            '"' | '\'' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                let mut closed = false;
                while i < chars.len() {
                    match chars[i] {
                        '\\' if i + 1 < chars.len() => {
                            let n = chars[i + 1];
                            s.push(match n {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                            i += 2;
                        }
                        ch if ch == quote => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        ch => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                if !closed {
                    return Err(syntax(
                        format!("The quoted string '{s}' has not been completed."),
                        start,
                    ));
                }
                out.push((Tok::Str(s), start));
            }
            '=' => {
                out.push((Tok::Op("="), start));
                i += 1;
            }
            '~' => {
                out.push((Tok::Op("~"), start));
                i += 1;
            }
            '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let op = match (c, next) {
                    ('!', Some('=')) => "!=",
                    ('!', Some('~')) => "!~",
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', _) => "<",
                    ('>', _) => ">",
                    _ => {
                        return Err(syntax(
                            "The character '!' is a reserved JQL character.".into(),
                            start,
                        ));
                    }
                };
                i += op.len();
                out.push((Tok::Op(op), start));
            }
            _ => {
                let mut w = String::new();
                while i < chars.len() {
                    let ch = chars[i];
                    if ch.is_whitespace() || "()=,!~<>\"'".contains(ch) {
                        break;
                    }
                    w.push(ch);
                    i += 1;
                }
                out.push((Tok::Word(w), start));
            }
        }
    }
    Ok(out)
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Like,
    NotLike,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Is,
    IsNot,
}

impl Op {
    fn show(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Like => "~",
            Op::NotLike => "!~",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::In => "in",
            Op::NotIn => "not in",
            Op::Is => "is",
            Op::IsNot => "is not",
        }
    }
}

/// The right-hand side of a clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Value(String),
    List(Vec<String>),
    Empty,
    Func(String),
}

/// A parsed condition tree, not yet bound to fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Clause {
        field: String,
        op: Op,
        operand: Operand,
    },
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub filter: Option<Expr>,
    /// (field name as written, descending)
    pub order: Vec<(String, bool)>,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    /// Nesting depth of parentheses and NOTs; bounded so hostile input cannot overflow the
    /// stack of this recursive-descent parser.
    depth: usize,
}

const MAX_DEPTH: usize = 100;
const MAX_TOKENS: usize = 2000;

const VALID_OPS: &str = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'.";

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.1).unwrap_or(self.end)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }
    fn got(&self) -> String {
        match self.peek() {
            Some(t) => format!("'{}'", t.show()),
            None => "end of query".into(),
        }
    }
    fn fail<T>(&self, expecting: &str) -> Result<T, String> {
        Err(syntax(
            format!("Expecting {expecting} but got {}.", self.got()),
            self.at(),
        ))
    }

    fn query(&mut self) -> Result<Query, String> {
        let filter = if self.peek().is_none() || self.peek().is_some_and(|t| t.is_kw("order")) {
            None
        } else {
            Some(self.or()?)
        };
        let mut order = Vec::new();
        if self.peek().is_some_and(|t| t.is_kw("order")) {
            self.next();
            if !self.peek().is_some_and(|t| t.is_kw("by")) {
                return self.fail("'by'");
            }
            self.next();
            loop {
                let field = match self.next() {
                    Some(Tok::Word(w)) | Some(Tok::Str(w)) => w,
                    _ => {
                        self.pos = self.pos.saturating_sub(1);
                        return self.fail("a field name");
                    }
                };
                let mut desc = false;
                if self.peek().is_some_and(|t| t.is_kw("desc")) {
                    desc = true;
                    self.next();
                } else if self.peek().is_some_and(|t| t.is_kw("asc")) {
                    self.next();
                }
                order.push((field, desc));
                if self.peek() == Some(&Tok::Comma) {
                    self.next();
                } else {
                    break;
                }
            }
        }
        if self.peek().is_some() {
            return self.fail("either 'OR' or 'AND'");
        }
        Ok(Query { filter, order })
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self
            .peek()
            .is_some_and(|t| t.is_kw("or") || *t == Tok::Word("||".into()))
        {
            self.next();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self
            .peek()
            .is_some_and(|t| t.is_kw("and") || *t == Tok::Word("&&".into()))
        {
            self.next();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax("The query is nested too deeply.".into(), self.at()));
        }
        let result = self.unary_inner();
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(t) if t.is_kw("not") => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.next();
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.fail("')'");
                }
                self.next();
                Ok(e)
            }
            _ => self.clause(),
        }
    }

    fn clause(&mut self) -> Result<Expr, String> {
        let field = match self.peek() {
            Some(Tok::Word(w))
                if !["and", "or", "order", "not", "in", "is", "empty", "null"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                w.clone()
            }
            Some(Tok::Str(s)) => s.clone(),
            _ => return self.fail("a field name"),
        };
        self.next();
        let op = match self.peek() {
            Some(Tok::Op(o)) => {
                let op = match *o {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "~" => Op::Like,
                    "!~" => Op::NotLike,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    "<" => Op::Lt,
                    _ => Op::Le,
                };
                self.next();
                op
            }
            Some(t) if t.is_kw("in") => {
                self.next();
                Op::In
            }
            Some(t) if t.is_kw("is") => {
                self.next();
                if self.peek().is_some_and(|t| t.is_kw("not")) {
                    self.next();
                    Op::IsNot
                } else {
                    Op::Is
                }
            }
            Some(t) if t.is_kw("not") => {
                self.next();
                if !self.peek().is_some_and(|t| t.is_kw("in")) {
                    return self.fail("'IN'");
                }
                self.next();
                Op::NotIn
            }
            _ => {
                return Err(syntax(
                    format!("Expecting operator but got {}. {VALID_OPS}", self.got()),
                    self.at(),
                ));
            }
        };
        let operand = self.operand(op)?;
        Ok(Expr::Clause { field, op, operand })
    }

    fn operand(&mut self, op: Op) -> Result<Operand, String> {
        match self.peek() {
            Some(t) if t.is_kw("empty") || t.is_kw("null") => {
                self.next();
                Ok(Operand::Empty)
            }
            Some(Tok::LParen) => {
                self.next();
                let mut items = Vec::new();
                loop {
                    match self.next() {
                        Some(Tok::Word(w)) | Some(Tok::Str(w)) => items.push(w),
                        _ => {
                            self.pos = self.pos.saturating_sub(1);
                            return self.fail("a value");
                        }
                    }
                    match self.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::RParen) => break,
                        _ => {
                            self.pos = self.pos.saturating_sub(1);
                            return self.fail("either ',' or ')'");
                        }
                    }
                }
                Ok(Operand::List(items))
            }
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.next();
                if self.peek() == Some(&Tok::LParen) {
                    self.next();
                    // Arguments are ignored; only argument-less functions are supported.
                    while let Some(t) = self.next() {
                        if t == Tok::RParen {
                            return Ok(Operand::Func(w.to_ascii_lowercase()));
                        }
                    }
                    return self.fail("')'");
                }
                if matches!(op, Op::In | Op::NotIn) {
                    return Ok(Operand::List(vec![w]));
                }
                Ok(Operand::Value(w))
            }
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.next();
                Ok(Operand::Value(s))
            }
            _ => self.fail("either a value, list or function"),
        }
    }
}

/// Parse JQL text. Errors carry Jira's "Error in the JQL Query: ..." message.
pub fn parse(src: &str) -> Result<Query, String> {
    let toks = tokenize(src)?;
    // AND/OR chains build a tree as deep as they are long, and evaluation recurses over it;
    // a cap on the query size keeps hostile input from exhausting the stack.
    if toks.len() > MAX_TOKENS {
        return Err(format!(
            "Error in the JQL Query: The query is too long ({} terms; at most {MAX_TOKENS}).",
            toks.len()
        ));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: src.chars().count(),
        depth: 0,
    };
    p.query()
}

/// What evaluation needs besides the issue: the catalogue and the caller.
pub struct Ctx<'a> {
    pub projects: &'a [Project],
    pub users: &'a [User],
    pub now: DateTime<Utc>,
    /// Account id for `currentUser()`.
    pub current_user: &'a str,
    /// All issue keys, to reject `key = NOPE-1` like Jira.
    pub keys: &'a dyn Fn(&str) -> bool,
}

/// Check field names, operators and values against the catalogue. Errors are Jira's
/// messages without the syntax prefix (they are not syntax errors).
pub fn validate(q: &Query, ctx: &Ctx) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if let Some(f) = &q.filter {
        validate_expr(f, ctx, &mut errors);
    }
    for (name, _) in &q.order {
        if bind(name).is_none() {
            errors.push(format!("Not able to sort using field '{name}'."));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What a dynamic (app) webhook's `jqlFilter` may use, per Jira: the fields `issueKey`,
/// `project`, `issuetype`, `status`, `assignee`, `reporter`, `issue.property` and `cf[id]` for
/// the epic label only (the sandbox has none), the operators `=`, `!=`, `IN` and `NOT IN`,
/// and `AND`/`OR`/`NOT`. Returns one message per offending clause.
///
/// `issue.property[...]` clauses are reported too: the sandbox has no issue properties.
pub fn webhook_filter_errors(q: &Query) -> Vec<String> {
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            Expr::Not(a) => walk(a, out),
            Expr::Clause { field, op, operand } => {
                let lower = field.to_ascii_lowercase();
                let allowed = [
                    "issuekey",
                    "project",
                    "issuetype",
                    "status",
                    "assignee",
                    "reporter",
                ]
                .contains(&lower.as_str());
                if lower.starts_with("issue.property") {
                    out.push(format!(
                        "The clause {field} is unsupported (the Jira sandbox has no issue properties)"
                    ));
                } else if !allowed {
                    out.push(format!("The clause {field} is unsupported"));
                } else if !matches!(op, Op::Eq | Op::Ne | Op::In | Op::NotIn) {
                    out.push(format!(
                        "The operator {} is unsupported",
                        op.show().to_ascii_uppercase()
                    ));
                } else if let Operand::Func(f) = operand {
                    out.push(format!("The function {f} is unsupported"));
                }
            }
        }
    }
    let mut out = Vec::new();
    match &q.filter {
        Some(f) => walk(f, &mut out),
        None => out.push("The JQL filter must not be empty".to_string()),
    }
    if !q.order.is_empty() {
        out.push("The ORDER BY clause is unsupported".to_string());
    }
    out
}

/// A field reference after binding.
#[derive(Clone, Copy)]
enum Target {
    Key,
    Id,
    Field(&'static FieldDef),
}

fn bind(name: &str) -> Option<Target> {
    match name.to_ascii_lowercase().as_str() {
        "key" | "issuekey" => Some(Target::Key),
        "id" => Some(Target::Id),
        _ => model::field_by_clause(name).map(Target::Field),
    }
}

fn supported(t: Target, op: Op) -> bool {
    use Op::*;
    match t {
        Target::Key | Target::Id => matches!(op, Eq | Ne | In | NotIn | Gt | Ge | Lt | Le),
        Target::Field(f) => match f.kind {
            Kind::Text | Kind::RichText => matches!(op, Like | NotLike | Is | IsNot),
            Kind::Project | Kind::IssueType | Kind::Status => matches!(op, Eq | Ne | In | NotIn),
            Kind::Priority | Kind::Labels | Kind::User | Kind::Select | Kind::Resolution => {
                matches!(op, Eq | Ne | In | NotIn | Is | IsNot)
            }
            Kind::Date | Kind::DateTime | Kind::Number => {
                matches!(op, Eq | Ne | In | NotIn | Is | IsNot | Gt | Ge | Lt | Le)
            }
        },
    }
}

fn values(operand: &Operand) -> Vec<&str> {
    match operand {
        Operand::Value(v) => vec![v.as_str()],
        Operand::List(l) => l.iter().map(String::as_str).collect(),
        Operand::Empty | Operand::Func(_) => vec![],
    }
}

fn validate_expr(e: &Expr, ctx: &Ctx, errors: &mut Vec<String>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            validate_expr(a, ctx, errors);
            validate_expr(b, ctx, errors);
        }
        Expr::Not(a) => validate_expr(a, ctx, errors),
        Expr::Clause { field, op, operand } => {
            let Some(t) = bind(field) else {
                errors.push(format!(
                    "Field '{field}' does not exist or you do not have permission to view it."
                ));
                return;
            };
            if !supported(t, *op) {
                errors.push(format!(
                    "The operator '{}' is not supported by the '{field}' field.",
                    op.show()
                ));
                return;
            }
            let empty_ok = matches!(op, Op::Is | Op::IsNot);
            if empty_ok != matches!(operand, Operand::Empty) {
                if empty_ok {
                    errors.push(format!(
                        "The operator '{}' only supports the EMPTY value.",
                        op.show()
                    ));
                    return;
                }
                if matches!(operand, Operand::Empty) && !matches!(op, Op::Eq | Op::Ne) {
                    errors.push(format!(
                        "The operator '{}' does not support the EMPTY value.",
                        op.show()
                    ));
                    return;
                }
            }
            if let Operand::Func(name) = operand {
                let ok = match name.as_str() {
                    "now" => {
                        matches!(t, Target::Field(f) if matches!(f.kind, Kind::Date | Kind::DateTime))
                    }
                    "currentuser" => matches!(t, Target::Field(f) if f.kind == Kind::User),
                    _ => false,
                };
                if !ok {
                    errors.push(format!(
                        "Unable to find JQL function '{name}()' for field '{field}'."
                    ));
                }
                return;
            }
            for v in values(operand) {
                let known = match t {
                    Target::Key => (ctx.keys)(v),
                    Target::Id => v.parse::<u64>().is_ok(),
                    Target::Field(f) => match f.kind {
                        Kind::Project => ctx.projects.iter().any(|p| {
                            p.key.eq_ignore_ascii_case(v)
                                || p.name.eq_ignore_ascii_case(v)
                                || p.id == v
                        }),
                        Kind::Status => model::status(v).is_some(),
                        Kind::IssueType => model::issue_type(v).is_some(),
                        Kind::Priority => model::priority(v).is_some(),
                        Kind::Resolution => {
                            v.eq_ignore_ascii_case(model::RESOLUTION_DONE.1)
                                || v == model::RESOLUTION_DONE.0
                        }
                        Kind::Select => f
                            .options
                            .iter()
                            .any(|(id, val)| *id == v || val.eq_ignore_ascii_case(v)),
                        Kind::Number => v.parse::<f64>().is_ok(),
                        Kind::Date | Kind::DateTime => {
                            if parse_date(v, ctx.now).is_none() {
                                errors.push(format!(
                                    "Date value '{v}' for field '{field}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
                                ));
                            }
                            true
                        }
                        _ => true,
                    },
                };
                if !known {
                    let msg = match t {
                        Target::Key => {
                            format!("An issue with key '{v}' does not exist for field '{field}'.")
                        }
                        _ => format!("The value '{v}' does not exist for the field '{field}'."),
                    };
                    errors.push(msg);
                }
            }
        }
    }
}

/// Parse a JQL date: `yyyy/MM/dd HH:mm`, `yyyy-MM-dd HH:mm`, `yyyy/MM/dd`, `yyyy-MM-dd`, or a
/// relative period such as `-5m`, `-1d`, `2h`, `-1w 2d` (relative to `now`). Times are UTC:
/// the sandbox's users all live in UTC.
pub fn parse_date(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    for fmt in ["%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    for fmt in ["%Y/%m/%d", "%Y-%m-%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
        }
    }
    // Relative period: optional sign, then groups of <number><unit>.
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1i64, r),
        None => (1i64, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total = Duration::zero();
    let mut num = String::new();
    let mut any = false;
    for c in rest.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else if c.is_whitespace() {
            continue;
        } else {
            let n: i64 = num.parse().ok()?;
            num.clear();
            let d = match c {
                'm' => Duration::try_minutes(n)?,
                'h' => Duration::try_hours(n)?,
                'd' => Duration::try_days(n)?,
                'w' => Duration::try_weeks(n)?,
                _ => return None,
            };
            total = total.checked_add(&d)?;
            any = true;
        }
    }
    if !num.is_empty() || !any {
        return None;
    }
    now.checked_add_signed(total.checked_mul(sign as i32)?)
}

/// Evaluate a validated filter against one issue.
pub fn matches(e: &Expr, issue: &Issue, ctx: &Ctx) -> bool {
    match e {
        Expr::And(a, b) => matches(a, issue, ctx) && matches(b, issue, ctx),
        Expr::Or(a, b) => matches(a, issue, ctx) || matches(b, issue, ctx),
        Expr::Not(a) => !matches(a, issue, ctx),
        Expr::Clause { field, op, operand } => match bind(field) {
            Some(t) => clause(t, *op, operand, issue, ctx),
            None => false,
        },
    }
}

fn clause(t: Target, op: Op, operand: &Operand, issue: &Issue, ctx: &Ctx) -> bool {
    let def = match t {
        Target::Key | Target::Id => {
            let cmp = |v: &str| -> Option<Ordering> {
                if let Target::Id = t {
                    return v.parse::<u64>().ok().map(|n| issue.id.cmp(&n));
                }
                if issue.key.eq_ignore_ascii_case(v) || issue.id.to_string() == v {
                    return Some(Ordering::Equal);
                }
                let (proj, num) = v.rsplit_once('-')?;
                if !proj.eq_ignore_ascii_case(&issue.project.key) {
                    return None;
                }
                num.parse::<u64>().ok().map(|n| issue.key_number().cmp(&n))
            };
            return compare_op(op, operand, cmp);
        }
        Target::Field(def) => def,
    };
    let value = if def.kind == Kind::DateTime {
        Value::Null
    } else if def.kind == Kind::Project {
        Value::String(issue.project.key.clone())
    } else {
        issue.get(def.id).clone()
    };
    let is_empty = match def.kind {
        Kind::Labels => value.as_array().is_none_or(Vec::is_empty),
        Kind::DateTime => false,
        _ => value.is_null(),
    };
    match op {
        Op::Is => return is_empty,
        Op::IsNot => return !is_empty,
        _ => {}
    }
    if matches!(operand, Operand::Empty) {
        return match op {
            Op::Eq => is_empty,
            Op::Ne => !is_empty,
            _ => false,
        };
    }
    match def.kind {
        Kind::Text | Kind::RichText => {
            let text = model::searchable_text(def, &value);
            let hit = match (text, operand) {
                (Some(t), Operand::Value(q)) => text_match(&t, q),
                _ => false,
            };
            match op {
                Op::Like => hit,
                Op::NotLike => !hit && !is_empty,
                _ => false,
            }
        }
        Kind::Date | Kind::DateTime => {
            let at = match def.id {
                "created" => Some(issue.created),
                "updated" => Some(issue.updated),
                _ => value.as_str().and_then(|d| parse_date(d, ctx.now)),
            };
            let Some(at) = at else { return false };
            let date_only = def.kind == Kind::Date;
            compare_op(op, operand, |v| {
                let when = if v == "now" {
                    Some(ctx.now)
                } else {
                    parse_date(v, ctx.now)
                }?;
                if date_only {
                    Some(at.date_naive().cmp(&when.date_naive()))
                } else {
                    Some(at.cmp(&when))
                }
            })
        }
        Kind::Number => {
            let Some(n) = value.as_f64() else {
                return false;
            };
            compare_op(op, operand, |v| {
                v.parse::<f64>().ok().and_then(|q| n.partial_cmp(&q))
            })
        }
        Kind::Labels => {
            let labels: Vec<&str> = value
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let has = |v: &str| labels.iter().any(|l| l.eq_ignore_ascii_case(v));
            let vals = values(operand);
            match op {
                Op::Eq | Op::In => vals.iter().any(|v| has(v)),
                Op::Ne | Op::NotIn => !vals.iter().any(|v| has(v)),
                _ => false,
            }
        }
        _ => {
            let stored = value.as_str().unwrap_or_default();
            let eq = |v: &str| -> bool {
                match def.kind {
                    Kind::Project => ctx.projects.iter().any(|p| {
                        p.key == stored
                            && (p.key.eq_ignore_ascii_case(v)
                                || p.name.eq_ignore_ascii_case(v)
                                || p.id == v)
                    }),
                    Kind::Status => model::status(v).is_some_and(|s| s.id == stored),
                    Kind::IssueType => model::issue_type(v).is_some_and(|s| s.0 == stored),
                    Kind::Priority => model::priority(v).is_some_and(|s| s.0 == stored),
                    Kind::Resolution => !stored.is_empty(),
                    Kind::Select => def.options.iter().any(|(id, val)| {
                        *id == stored && (*id == v || val.eq_ignore_ascii_case(v))
                    }),
                    Kind::User => ctx.users.iter().any(|u| {
                        u.account_id == stored
                            && (u.account_id == v
                                || u.name.eq_ignore_ascii_case(v)
                                || u.display_name.eq_ignore_ascii_case(v)
                                || u.email.eq_ignore_ascii_case(v))
                    }),
                    _ => stored == v,
                }
            };
            let any = match operand {
                Operand::Func(f) if f == "currentuser" => stored == ctx.current_user,
                _ => values(operand).iter().any(|v| eq(v)),
            };
            let present = !is_empty;
            match op {
                Op::Eq | Op::In => any,
                // Jira's `!=` never matches issues where the field is empty.
                Op::Ne | Op::NotIn => present && !any,
                _ => false,
            }
        }
    }
}

fn compare_op(op: Op, operand: &Operand, cmp: impl Fn(&str) -> Option<Ordering>) -> bool {
    let owned;
    let vals: Vec<&str> = match operand {
        Operand::Func(f) => {
            owned = f.clone();
            vec![owned.as_str()]
        }
        other => values(other),
    };
    let mut results = vals.iter().map(|v| cmp(v));
    match op {
        Op::Eq | Op::In => results.any(|r| r == Some(Ordering::Equal)),
        Op::Ne | Op::NotIn => results.all(|r| r.is_some_and(|o| o != Ordering::Equal)),
        Op::Gt => results.any(|r| r == Some(Ordering::Greater)),
        Op::Ge => results.any(|r| matches!(r, Some(Ordering::Greater | Ordering::Equal))),
        Op::Lt => results.any(|r| r == Some(Ordering::Less)),
        Op::Le => results.any(|r| matches!(r, Some(Ordering::Less | Ordering::Equal))),
        _ => false,
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Jira's `~`: full-text. A query wrapped in quotes is a phrase (its words consecutive);
/// otherwise every term must occur as a word, `term*` matching by prefix.
pub fn text_match(text: &str, query: &str) -> bool {
    let hay = words(text);
    let q = query.trim();
    if q.len() >= 2 && q.starts_with('"') && q.ends_with('"') {
        let phrase = words(&q[1..q.len() - 1]);
        if phrase.is_empty() {
            return false;
        }
        return hay.windows(phrase.len()).any(|w| w == phrase.as_slice());
    }
    let mut any = false;
    for term in q.split_whitespace() {
        if let Some(prefix) = term.strip_suffix('*') {
            let p = words(prefix);
            let Some(first) = p.first() else { continue };
            any = true;
            if !hay.iter().any(|w| w.starts_with(first.as_str())) {
                return false;
            }
            continue;
        }
        for w in words(term) {
            any = true;
            if !hay.contains(&w) {
                return false;
            }
        }
    }
    any
}

/// Order issues by the query's ORDER BY (default: newest first, like Jira's `key DESC`).
pub fn sort(issues: &mut [&Issue], order: &[(String, bool)], users: &[User]) {
    if order.is_empty() {
        issues.sort_by_key(|i| std::cmp::Reverse(i.id));
        return;
    }
    issues.sort_by(|a, b| {
        for (name, desc) in order {
            let o = cmp_by(name, a, b, users);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
}

fn cmp_by(name: &str, a: &Issue, b: &Issue, users: &[User]) -> Ordering {
    match bind(name) {
        Some(Target::Key) => {
            (a.project.key.as_str(), a.key_number()).cmp(&(b.project.key.as_str(), b.key_number()))
        }
        Some(Target::Id) => a.id.cmp(&b.id),
        Some(Target::Field(def)) => match def.id {
            "created" => a.created.cmp(&b.created),
            "updated" => a.updated.cmp(&b.updated),
            "project" => a.project.key.cmp(&b.project.key),
            // Highest sorts as the largest priority, so `ORDER BY priority DESC` puts it first.
            "priority" => {
                let p = |i: &Issue| {
                    i.get("priority")
                        .as_str()
                        .and_then(|s| s.parse::<i64>().ok())
                        .map(|n| -n)
                };
                p(a).cmp(&p(b))
            }
            _ => sort_key(def, a.get(def.id), users).cmp(&sort_key(def, b.get(def.id), users)),
        },
        None => Ordering::Equal,
    }
}

/// An f64 with a total order, so number fields can be sort keys.
struct F(f64);
impl PartialEq for F {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for F {}
impl PartialOrd for F {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn sort_key(def: &FieldDef, v: &Value, users: &[User]) -> (Option<F>, String) {
    match def.kind {
        Kind::Number => (v.as_f64().map(F), String::new()),
        Kind::User => (
            None,
            users
                .iter()
                .find(|u| Some(u.account_id.as_str()) == v.as_str())
                .map(|u| u.display_name.clone())
                .unwrap_or_default(),
        ),
        Kind::Status => (
            None,
            v.as_str()
                .and_then(model::status)
                .map(|s| s.name.to_string())
                .unwrap_or_default(),
        ),
        _ => (
            None,
            model::searchable_text(def, v)
                .unwrap_or_else(|| v.as_str().map(str::to_string).unwrap_or_default()),
        ),
    }
}

#[cfg(test)]
mod tests;
