//! Progress bars on standard error, silenced when output must stay machine-readable.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Makes progress bars, or hidden ones in quiet mode.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub quiet: bool,
}

impl Progress {
    /// A bar over `len` units of `unit`.
    pub fn bar(&self, len: u64, message: &str, unit: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let template =
            format!("{{msg:>12}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{elapsed}})");
        let bar = ProgressBar::new(len);
        bar.set_style(
            styled(ProgressStyle::with_template(&template), ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message.to_owned());
        bar
    }

    /// A spinner for work of unknown length.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(styled(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})"),
            ProgressStyle::default_spinner(),
        ));
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A download bar in bytes.
    pub fn bytes(&self, message: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            styled(
                ProgressStyle::with_template(
                    "{msg:>12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
                ),
                ProgressStyle::default_bar(),
            )
            .progress_chars("=> "),
        );
        bar.set_message(message.to_owned());
        bar
    }

    /// Prints a line to standard error unless quiet (never to stdout).
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", line.as_ref());
        }
    }
}

/// The style a template gives, or `plain` if it does not parse: a progress
/// bar's looks are never worth failing the work it shows.
fn styled(
    template: Result<ProgressStyle, indicatif::style::TemplateError>,
    plain: ProgressStyle,
) -> ProgressStyle {
    template.unwrap_or(plain)
}
