//! The questions of `tandem init`, asked in plain text on any reader and writer (stdin and
//! stdout in use, byte buffers in tests), so a terminal, a pipe or a script can answer them.
//!
//! Every question shows its default in brackets; an empty answer takes it. An input that
//! ends before a question is answered is an error naming the question, never a silent
//! default, so a script that feeds too few lines finds out which answer it forgot.

use std::io::{self, BufRead, Write};

/// Asks questions on `input`, writing them to `output`.
pub struct Prompter<R, W> {
    input: R,
    output: W,
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    pub fn new(input: R, output: W) -> Self {
        Prompter { input, output }
    }

    /// A line of text for the person answering (a heading, a result, a problem).
    pub fn say(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.output, "{text}")?;
        self.output.flush()
    }

    fn read_line(&mut self, question: &str) -> io::Result<String> {
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the input ended before this question was answered: {question}"),
            ));
        }
        Ok(line.trim().to_string())
    }

    /// A free-text answer; `default` is taken for an empty one. Without a default an empty
    /// answer asks again.
    pub fn ask(&mut self, question: &str, default: Option<&str>) -> io::Result<String> {
        loop {
            match default {
                Some(d) if !d.is_empty() => write!(self.output, "{question} [{d}]: ")?,
                _ => write!(self.output, "{question}: ")?,
            }
            self.output.flush()?;
            let answer = self.read_line(question)?;
            if !answer.is_empty() {
                return Ok(answer);
            }
            if let Some(d) = default {
                return Ok(d.to_string());
            }
            writeln!(self.output, "  (an answer is needed)")?;
        }
    }

    /// Like [`Self::ask`], asking again until `valid` accepts the answer; its error is shown.
    pub fn ask_valid(
        &mut self,
        question: &str,
        default: Option<&str>,
        valid: impl Fn(&str) -> Result<(), String>,
    ) -> io::Result<String> {
        loop {
            let answer = self.ask(question, default)?;
            match valid(&answer) {
                Ok(()) => return Ok(answer),
                Err(e) => writeln!(self.output, "  {e}")?,
            }
        }
    }

    /// One of `choices` (matched case-insensitively), asking again otherwise.
    pub fn choose(
        &mut self,
        question: &str,
        choices: &[&str],
        default: &str,
    ) -> io::Result<String> {
        let q = format!("{question} ({})", choices.join("/"));
        self.ask_valid(&q, Some(default), |a| {
            if choices.iter().any(|c| c.eq_ignore_ascii_case(a)) {
                Ok(())
            } else {
                Err(format!("answer one of: {}", choices.join(", ")))
            }
        })
        .map(|a| a.to_ascii_lowercase())
    }

    /// Yes or no.
    pub fn confirm(&mut self, question: &str, default: bool) -> io::Result<bool> {
        let d = if default { "Y/n" } else { "y/N" };
        loop {
            write!(self.output, "{question} [{d}]: ")?;
            self.output.flush()?;
            let answer = self.read_line(question)?.to_ascii_lowercase();
            match answer.as_str() {
                "" => return Ok(default),
                "y" | "yes" => return Ok(true),
                "n" | "no" => return Ok(false),
                _ => writeln!(self.output, "  answer y or n")?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompter(input: &str) -> Prompter<&[u8], Vec<u8>> {
        Prompter::new(input.as_bytes(), Vec::new())
    }

    #[test]
    fn empty_answers_take_the_default_and_unknown_choices_ask_again() {
        let mut p = prompter("\nmaybe\nJIRA\n\nno\n");
        assert_eq!(p.ask("Name", Some("sync")).unwrap(), "sync");
        assert_eq!(
            p.choose("System", &["seed", "jira"], "seed").unwrap(),
            "jira"
        );
        assert!(p.confirm("Keep", true).unwrap());
        assert!(!p.confirm("Keep", true).unwrap());
        let shown = String::from_utf8(p.output).unwrap();
        assert!(shown.contains("Name [sync]: "), "{shown}");
        assert!(shown.contains("answer one of: seed, jira"), "{shown}");
    }

    #[test]
    fn input_that_ends_names_the_unanswered_question() {
        let mut p = prompter("");
        let e = p.ask("Jira base URL", None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("Jira base URL"), "{e}");
    }
}
