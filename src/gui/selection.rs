//! Which photos are selected: a set, the photo with the focus (the one the details pane and
//! the viewer show), and the anchor a Shift-click extends from, as file managers have them.

use std::collections::BTreeSet;

/// How a click changes the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Select this photo only (a plain click).
    Only,
    /// Add or take away this photo, keeping the others (Ctrl- or Cmd-click).
    Toggle,
    /// Select every photo from the anchor to this one in the grid's order (Shift-click).
    Range,
}

impl Pick {
    /// The pick a click makes with these modifier keys held.
    pub fn from_modifiers(modifiers: egui::Modifiers) -> Self {
        if modifiers.shift {
            Pick::Range
        } else if modifiers.command {
            Pick::Toggle
        } else {
            Pick::Only
        }
    }
}

/// The selected photos, by index in the photo list.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Selection {
    set: BTreeSet<usize>,
    focus: Option<usize>,
    anchor: Option<usize>,
}

impl Selection {
    /// The photo with the focus: the last one clicked or reached with the keys.
    pub fn focus(&self) -> Option<usize> {
        self.focus
    }

    /// Whether the photo at `index` is selected.
    pub fn contains(&self, index: usize) -> bool {
        self.set.contains(&index)
    }

    /// How many photos are selected.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The selected indices, ascending.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.set.iter().copied()
    }

    /// Changes the selection as a click on `index` with `pick` does; `visible` is the grid's
    /// order, which a range follows.
    pub fn pick(&mut self, index: usize, pick: Pick, visible: &[usize]) {
        match pick {
            Pick::Only => {
                self.set.clear();
                self.set.insert(index);
                self.anchor = Some(index);
            }
            Pick::Toggle => {
                if !self.set.remove(&index) {
                    self.set.insert(index);
                }
                self.anchor = Some(index);
            }
            Pick::Range => {
                let anchor = self.anchor.unwrap_or(index);
                let position = |i: usize| visible.iter().position(|&v| v == i);
                self.set.clear();
                match (position(anchor), position(index)) {
                    (Some(a), Some(b)) => self.set.extend(&visible[a.min(b)..=a.max(b)]),
                    _ => {
                        self.set.insert(index);
                        self.anchor = Some(index);
                    }
                }
            }
        }
        self.focus = self.set.contains(&index).then_some(index).or_else(|| self.set.last().copied());
    }

    /// Selects every photo in `visible`, keeping the focus if it is among them.
    pub fn select_all(&mut self, visible: &[usize]) {
        self.set = visible.iter().copied().collect();
        if self.focus.is_none_or(|f| !self.set.contains(&f)) {
            self.focus = visible.first().copied();
        }
        self.anchor = self.focus;
    }

    /// Keeps selected only the photos in `visible`.
    pub fn keep_only(&mut self, visible: &[usize]) {
        let shown: BTreeSet<usize> = visible.iter().copied().collect();
        self.set.retain(|i| shown.contains(i));
        if self.focus.is_some_and(|f| !self.set.contains(&f)) {
            self.focus = self.set.first().copied();
        }
        if self.anchor.is_some_and(|a| !self.set.contains(&a)) {
            self.anchor = self.focus;
        }
    }

    /// Selects nothing.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ctrl_and_shift_clicks_select_as_file_managers_do() {
        // The grid shows indices in this order.
        let visible = [4, 2, 0, 3, 1];
        let mut selection = Selection::default();
        selection.pick(2, Pick::Only, &visible);
        assert_eq!(selection.indices().collect::<Vec<_>>(), [2]);
        selection.pick(1, Pick::Toggle, &visible);
        assert_eq!(selection.indices().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(selection.focus(), Some(1));
        // A range runs from the anchor (the last clicked) along the grid's order.
        selection.pick(0, Pick::Range, &visible);
        assert_eq!(selection.indices().collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(selection.focus(), Some(0));
        selection.pick(4, Pick::Range, &visible);
        assert_eq!(selection.indices().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        // Ctrl-click on a selected photo takes it away; the focus moves to one still selected.
        selection.pick(4, Pick::Toggle, &visible);
        assert!(!selection.contains(4));
        assert!(selection.focus().is_some_and(|f| selection.contains(f)));
        selection.pick(3, Pick::Only, &visible);
        assert_eq!(selection.len(), 1);
        selection.clear();
        assert!(selection.is_empty() && selection.focus().is_none());
    }

    #[test]
    fn select_all_takes_what_the_grid_shows() {
        let mut selection = Selection::default();
        selection.pick(7, Pick::Only, &[7, 8]);
        selection.select_all(&[5, 6]);
        assert_eq!(selection.indices().collect::<Vec<_>>(), [5, 6]);
        assert_eq!(selection.focus(), Some(5));
    }

    #[test]
    fn hidden_photos_leave_the_selection() {
        let mut selection = Selection::default();
        selection.select_all(&[1, 2, 3]);
        selection.keep_only(&[3, 4]);
        assert_eq!(selection.indices().collect::<Vec<_>>(), [3]);
        assert_eq!(selection.focus(), Some(3));
        selection.keep_only(&[]);
        assert!(selection.is_empty() && selection.focus().is_none());
    }

    #[test]
    fn modifiers_choose_the_pick() {
        assert_eq!(Pick::from_modifiers(egui::Modifiers::NONE), Pick::Only);
        assert_eq!(Pick::from_modifiers(egui::Modifiers::COMMAND), Pick::Toggle);
        assert_eq!(Pick::from_modifiers(egui::Modifiers::SHIFT), Pick::Range);
    }
}
