//! What a view asks the app to do: the views draw what they are given and return actions,
//! which the app applies once per frame.

use std::path::PathBuf;

use super::photos::{PhotoId, SortKey};
use super::selection::Pick;
use crate::library::export::SidecarNaming;
use crate::model::device::{DTypeChoice, DeviceChoice};
use crate::model::registry::RegisteredModel;

/// Something a view asks the app to do. The views only draw; [`App`] applies their actions
/// once per frame, after all of them have drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open the system dialog for picking images.
    OpenImages,
    /// Open the system dialog for picking folders.
    OpenFolder,
    /// Show the grid in this order.
    SetSort(SortKey),
    /// Show only photos with a label containing this text; empty shows all.
    SetFilter(String),
    /// Show only the photos under this folder; `None` shows every photo.
    ShowFolder(Option<PathBuf>),
    /// Scan a file or folder of the library again: new photos are added, deleted ones go.
    RescanFolder(PathBuf),
    /// Take a file or folder out of the library, with its photos (never off the disk).
    RemoveFolder(PathBuf),
    /// Show or hide the settings window.
    ShowSettings(bool),
    /// Show or hide the errors panel.
    ShowErrors(bool),
    /// Forget the listed errors and hide their panel.
    ClearErrors,
    /// Stop the running job.
    Cancel,
    /// Tag the photos a cancel left untagged.
    Resume,
    /// Change the selection as a click on this photo does, scrolling the grid to it if
    /// `scroll`.
    Select {
        /// The photo.
        id: PhotoId,
        /// How the click changes the selection.
        pick: Pick,
        /// Whether the grid scrolls to bring it into view.
        scroll: bool,
    },
    /// Select every photo the grid shows.
    SelectAll,
    /// Put the selected photos' paths on the clipboard, one per line.
    CopyPaths,
    /// Show this photo in the viewer.
    OpenViewer(PhotoId),
    /// Close the viewer.
    CloseViewer,
    /// Show the photo this many places on in the grid's order.
    ViewerStep(isize),
    /// Magnify the viewer's photo to this factor of the fitted size.
    ViewerZoom(f32),
    /// Multiply the viewer's magnification by this factor.
    ViewerZoomBy(f32),
    /// Open a photo with the desktop's own viewer.
    OpenExternally(PathBuf),
    /// Open the folder that holds a photo.
    ShowInFolder(PathBuf),
    /// Take the selected photos out of the list (never off the disk).
    RemoveSelected,
    /// Forget the selection.
    ClearSelection,
    /// Put the keyboard focus in the filter box.
    FocusFilter,
    /// Select a photo by path, adding it to the list if it is not there yet.
    SelectPath(PathBuf),
    /// Ask for the photos most similar to this one.
    FindSimilar(PhotoId),
    /// Hide the similar photos.
    CloseSimilar,
    /// Load the model again (after a failure).
    RetryModel,
    /// Pick a local model folder and load the model from it.
    ChooseModelFolder,
    /// Download the model from the Hub instead of a local folder.
    UseHubModel,
    /// Tag with this registered model (from the Hub) from now on.
    ChooseModel(&'static RegisteredModel),
    /// Reload the model on another device.
    ChangeDevice(DeviceChoice),
    /// Reload the model in another precision.
    ChangePrecision(DTypeChoice),
    /// Draw the grid's tiles this many points wide.
    SetTileSize(f32),
    /// Leave labels below this probability out of exported tags.
    SetMinProb(f32),
    /// Name XMP sidecars this way.
    SetSidecarNaming(SidecarNaming),
    /// Ask before emptying the result and thumbnail caches.
    ClearCache,
    /// Empty them.
    ConfirmClearCache,
    /// Ask before writing XMP sidecars for the selected tagged photos, or every tagged photo
    /// when none is selected.
    ExportSidecars,
    /// Write the sidecars the confirmation showed.
    WriteSidecars,
    /// Close the confirmation without writing anything.
    CloseConfirmation,
    /// Change the text of the in-window path entry.
    TypePath(String),
    /// Use the paths typed in the in-window path entry.
    UseTypedPath,
    /// Show or hide the Duplicates view (showing it compares the library's photos).
    ShowDuplicates(bool),
    /// Group duplicates from this similarity on.
    SetDuplicateThreshold(f32),
    /// Ask before moving every group's other copies to the trash.
    AskToTrashDuplicates,
    /// Move them, with their sidecars.
    TrashDuplicates,
    /// Write a CSV of the selected tagged photos (every tagged photo when none is selected),
    /// to a file the user picks.
    ExportCsv,
}

impl Action {
    /// Whether the action changes what views other than its own widget show, so that the
    /// frame has to be drawn again to show it.
    pub(super) fn changes_views(&self) -> bool {
        !matches!(self, Action::SetMinProb(_) | Action::SetSidecarNaming(_) | Action::SetTileSize(_))
    }
}
