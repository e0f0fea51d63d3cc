//! ImageNet-1k class names, index-aligned with the classifier's outputs.

use std::sync::OnceLock;

/// One class name per line, in output order.
const IMAGENET_CLASSES: &str = include_str!("../../assets/imagenet_classes.txt");

/// A class with its name and probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    /// Index into the classifier's outputs.
    pub class: usize,
    /// Human-readable name, e.g. `tabby, tabby cat`.
    pub label: String,
    /// Softmax probability.
    pub prob: f32,
}

impl Label {
    /// The label's first name, the form used as a keyword (`tabby` for `tabby, tabby cat`).
    pub fn keyword(&self) -> &str {
        self.label.split(',').next().unwrap_or(&self.label).trim()
    }
}

fn imagenet_classes() -> &'static [&'static str] {
    static CLASSES: OnceLock<Vec<&'static str>> = OnceLock::new();
    CLASSES.get_or_init(|| IMAGENET_CLASSES.lines().map(str::trim_end).collect())
}

/// The name of class `index` of a classifier with `num_classes` outputs: the ImageNet-1k name
/// for 1000-way classifiers, `class N` otherwise.
pub fn class_name(index: usize, num_classes: usize) -> String {
    let classes = imagenet_classes();
    match classes.get(index) {
        Some(name) if num_classes == classes.len() => (*name).to_owned(),
        _ => format!("class {index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_1000_aligned_names() {
        assert_eq!(imagenet_classes().len(), 1000);
        assert_eq!(class_name(0, 1000), "tench, Tinca tinca");
        assert_eq!(class_name(281, 1000), "tabby, tabby cat");
        assert_eq!(class_name(999, 1000), "toilet tissue, toilet paper, bathroom tissue");
        assert_eq!(class_name(3, 10), "class 3");
    }
}
