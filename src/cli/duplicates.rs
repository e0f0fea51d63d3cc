//! `evatag duplicates`: exact and near copies, one group per line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::{Feedback, tag_to_search};
use crate::library::duplicates::{DEFAULT_THRESHOLD, DuplicateGraph, Group, LOWEST_THRESHOLD};
use crate::library::export::tabular::path_fields;
use crate::options::Options;
use crate::units::human_bytes;
use crate::worker::{Command, Event, Worker, WorkerConfig};

/// Options of `evatag duplicates`.
#[derive(Debug, clap::Args)]
pub struct DuplicatesArgs {
    /// Files and folders to look among (tagged first if needed); every photo the cache knows
    /// for the model when absent.
    pub paths: Vec<PathBuf>,
    /// The cosine similarity from which two photos are near copies (0.8 to 1; exact copies
    /// always group).
    #[arg(long, value_name = "T", default_value_t = DEFAULT_THRESHOLD, value_parser = parse_threshold)]
    pub threshold: f32,
    /// One JSON object per group instead of text.
    #[arg(long)]
    pub json: bool,
    /// Images per model batch while tagging PATHS.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
}

/// A threshold: a number from [`LOWEST_THRESHOLD`] to 1.
fn parse_threshold(text: &str) -> Result<f32, String> {
    let value: f32 = text.trim().parse().map_err(|_| format!("`{text}` is not a number"))?;
    if (LOWEST_THRESHOLD..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("`{text}` is not a threshold: use a cosine similarity from {LOWEST_THRESHOLD} to 1"))
    }
}

/// Runs `evatag duplicates`: exit 0, or 1 when some photos could not be read.
pub fn run(options: &Options, args: &DuplicatesArgs) -> anyhow::Result<ExitCode> {
    let worker = Worker::spawn(WorkerConfig::new(options, args.batch.into(), 5), Box::new(|| {}));
    let mut feedback = Feedback::new();
    let (within, failed) = tag_to_search(&worker, &mut feedback, &args.paths)?;
    worker.send(Command::FindDuplicates { within });
    let mut graph = None;
    for event in worker.events() {
        feedback.on_event(&event)?;
        if let Event::Duplicates(outcome) = event {
            feedback.bar.finish_and_clear();
            graph = Some(outcome.map_err(|e| anyhow::anyhow!("duplicates could not be looked for: {e}"))?);
            break;
        }
    }
    worker.shutdown();
    let graph = graph.ok_or_else(|| anyhow::anyhow!("the worker stopped before answering"))?;
    let groups = graph.groups(args.threshold);
    let mut stdout = std::io::stdout().lock();
    for group in &groups {
        if args.json {
            writeln!(stdout, "{}", group_json(&graph, group))?;
        } else {
            write_group_text(&mut stdout, &graph, group)?;
        }
    }
    let spare: Vec<_> = groups.iter().flat_map(|g| g.members.iter().filter(|m| !m.keep)).collect();
    let bytes: u64 = spare.iter().map(|m| graph.photos[m.photo].bytes).sum();
    eprintln!(
        "evatag: {} groups at threshold {}: {} photos could go ({})",
        groups.len(),
        args.threshold,
        spare.len(),
        human_bytes(bytes)
    );
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// A group as `{"group":[{"path":…,"width":…,"height":…,"bytes":…,"keep":…,"score":…},…]}`.
fn group_json(graph: &DuplicateGraph, group: &Group) -> serde_json::Value {
    let members: Vec<serde_json::Value> = group
        .members
        .iter()
        .map(|m| {
            let photo = &graph.photos[m.photo];
            let (path, path_bytes) = path_fields(&photo.path);
            let mut member = json!({
                "path": path,
                "width": photo.width,
                "height": photo.height,
                "bytes": photo.bytes,
                "keep": m.keep,
                "score": round_score(m.score),
            });
            if let Some(bytes) = path_bytes {
                member["path_bytes"] = json!(bytes);
            }
            member
        })
        .collect();
    json!({ "group": members })
}

/// A score to four decimals, as JSON prints it.
fn round_score(score: f32) -> f64 {
    (f64::from(score) * 1e4).round() / 1e4
}

/// A group as text: the photo to keep, then the others with their scores, then a blank line.
fn write_group_text(out: &mut impl Write, graph: &DuplicateGraph, group: &Group) -> std::io::Result<()> {
    for m in &group.members {
        let photo = &graph.photos[m.photo];
        let mark = if m.keep { "keep ".to_owned() } else { format!("{:.3}", m.score) };
        let size = format!("{}x{}", photo.width, photo.height);
        writeln!(out, "{mark}  {size:>11}  {:>9}  {}", human_bytes(photo.bytes), photo.path.display())?;
    }
    writeln!(out)
}
