//! Value maps, `High=3;Medium=2`: the option translation syntax of CSV cells, also accepted as
//! a string in TOML.

/// Parses `High=3;Medium=2` (Jira value on the left). `\;`, `\=`, `\#` and `\\` escape.
pub fn parse_value_map(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    // One pass: characters go to the key until the first unescaped `=`, then to the value,
    // until an unescaped `;` finishes the entry.
    let mut key = String::new();
    let mut val = String::new();
    let mut in_val = false;
    let mut chars = text.chars();
    let mut finish = |key: &mut String, val: &mut String, in_val: &mut bool| {
        let k = key.trim().to_string();
        let v = val.trim().to_string();
        let had_eq = *in_val;
        key.clear();
        val.clear();
        *in_val = false;
        if k.is_empty() && v.is_empty() && !had_eq {
            return Ok(()); // empty entry, e.g. a trailing `;`
        }
        if !had_eq {
            return Err(format!(
                "value map entry `{k}` has no `=`: write `jira value=external value`"
            ));
        }
        if k.is_empty() {
            return Err(format!("value map entry `={v}` has an empty Jira value"));
        }
        out.push((k, v));
        Ok(())
    };
    while let Some(c) = chars.next() {
        let target = if in_val { &mut val } else { &mut key };
        match c {
            '\\' => match chars.next() {
                Some(n) => target.push(n),
                None => target.push('\\'),
            },
            ';' => finish(&mut key, &mut val, &mut in_val)?,
            '=' if !in_val => in_val = true,
            c => target.push(c),
        }
    }
    finish(&mut key, &mut val, &mut in_val)?;
    Ok(out)
}

/// Writes a value map back in the `High=3;Medium=2` form, escaping as needed.
pub fn format_value_map(map: &[(String, String)]) -> String {
    fn esc(s: &str) -> String {
        let mut o = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, ';' | '=' | '\\' | '#') {
                o.push('\\');
            }
            o.push(c);
        }
        o
    }
    map.iter()
        .map(|(j, e)| format!("{}={}", esc(j), esc(e)))
        .collect::<Vec<_>>()
        .join(";")
}
