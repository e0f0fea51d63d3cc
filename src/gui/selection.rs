//! Which photos are selected: a set, the photo with the focus (the one the details pane and
//! the viewer show), and the anchor a Shift-click extends from, as file managers have them.

use std::collections::BTreeSet;

use super::photos::PhotoId;

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

/// The selected photos, by their ids in the photo list.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Selection {
    set: BTreeSet<PhotoId>,
    focus: Option<PhotoId>,
    anchor: Option<PhotoId>,
}

impl Selection {
    /// The photo with the focus: the last one clicked or reached with the keys.
    pub fn focus(&self) -> Option<PhotoId> {
        self.focus
    }

    /// Whether the photo is selected.
    pub fn contains(&self, id: PhotoId) -> bool {
        self.set.contains(&id)
    }

    /// How many photos are selected.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The selected photos' ids, in the order the photos were added.
    pub fn ids(&self) -> impl Iterator<Item = PhotoId> + '_ {
        self.set.iter().copied()
    }

    /// Changes the selection as a click on the photo `index` with `pick` does; `visible` is
    /// the grid's order, which a range follows.
    pub fn pick(&mut self, index: PhotoId, pick: Pick, visible: &[PhotoId]) {
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
                let position = |i: PhotoId| visible.iter().position(|&v| v == i);
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
    pub fn select_all(&mut self, visible: &[PhotoId]) {
        self.set = visible.iter().copied().collect();
        if self.focus.is_none_or(|f| !self.set.contains(&f)) {
            self.focus = visible.first().copied();
        }
        self.anchor = self.focus;
    }

    /// Keeps selected only the photos in `visible`.
    pub fn keep_only(&mut self, visible: &[PhotoId]) {
        let shown: BTreeSet<PhotoId> = visible.iter().copied().collect();
        self.retain(|id| shown.contains(&id));
    }

    /// Keeps selected only the photos for which `keep` holds; the focus and the anchor move
    /// to a photo still selected.
    pub fn retain(&mut self, keep: impl Fn(PhotoId) -> bool) {
        self.set.retain(|&id| keep(id));
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
    use crate::gui::photos::PhotoList;

    /// The ids of `n` photos added to a list, in the order added.
    fn ids(n: usize) -> Vec<PhotoId> {
        let mut list = PhotoList::default();
        (0..n).map(|i| list.queue(format!("/p/{i}.jpg").into(), None)).collect()
    }

    #[test]
    fn plain_ctrl_and_shift_clicks_select_as_file_managers_do() {
        let id = ids(5);
        // The grid shows the photos in this order.
        let visible = [id[4], id[2], id[0], id[3], id[1]];
        let mut selection = Selection::default();
        selection.pick(id[2], Pick::Only, &visible);
        assert_eq!(selection.ids().collect::<Vec<_>>(), [id[2]]);
        selection.pick(id[1], Pick::Toggle, &visible);
        assert_eq!(selection.ids().collect::<Vec<_>>(), [id[1], id[2]]);
        assert_eq!(selection.focus(), Some(id[1]));
        // A range runs from the anchor (the last clicked) along the grid's order.
        selection.pick(id[0], Pick::Range, &visible);
        assert_eq!(selection.ids().collect::<Vec<_>>(), [id[0], id[1], id[3]]);
        assert_eq!(selection.focus(), Some(id[0]));
        selection.pick(id[4], Pick::Range, &visible);
        assert_eq!(selection.len(), 5);
        // Ctrl-click on a selected photo takes it away; the focus moves to one still selected.
        selection.pick(id[4], Pick::Toggle, &visible);
        assert!(!selection.contains(id[4]));
        assert!(selection.focus().is_some_and(|f| selection.contains(f)));
        selection.pick(id[3], Pick::Only, &visible);
        assert_eq!(selection.len(), 1);
        selection.clear();
        assert!(selection.is_empty() && selection.focus().is_none());
    }

    #[test]
    fn select_all_takes_what_the_grid_shows() {
        let id = ids(9);
        let mut selection = Selection::default();
        selection.pick(id[7], Pick::Only, &[id[7], id[8]]);
        selection.select_all(&[id[5], id[6]]);
        assert_eq!(selection.ids().collect::<Vec<_>>(), [id[5], id[6]]);
        assert_eq!(selection.focus(), Some(id[5]));
    }

    #[test]
    fn hidden_photos_leave_the_selection() {
        let id = ids(5);
        let mut selection = Selection::default();
        selection.select_all(&[id[1], id[2], id[3]]);
        selection.keep_only(&[id[3], id[4]]);
        assert_eq!(selection.ids().collect::<Vec<_>>(), [id[3]]);
        assert_eq!(selection.focus(), Some(id[3]));
        selection.keep_only(&[]);
        assert!(selection.is_empty() && selection.focus().is_none());
    }

    #[test]
    fn a_removed_photo_leaves_the_selection_and_the_others_stay() {
        let id = ids(4);
        let mut selection = Selection::default();
        selection.select_all(&id);
        selection.pick(id[1], Pick::Toggle, &id);
        selection.pick(id[1], Pick::Toggle, &id);
        assert_eq!(selection.focus(), Some(id[1]));
        selection.retain(|photo| photo != id[1]);
        assert_eq!(selection.ids().collect::<Vec<_>>(), [id[0], id[2], id[3]]);
        assert_eq!(selection.focus(), Some(id[0]), "the focus moves to a photo still selected");
    }

    #[test]
    fn modifiers_choose_the_pick() {
        assert_eq!(Pick::from_modifiers(egui::Modifiers::NONE), Pick::Only);
        assert_eq!(Pick::from_modifiers(egui::Modifiers::COMMAND), Pick::Toggle);
        assert_eq!(Pick::from_modifiers(egui::Modifiers::SHIFT), Pick::Range);
    }
}
