//! libheif, loaded when the first HEIF file is met rather than linked.
//!
//! Why at run time: the decoders libheif drives (libde265 for HEVC, dav1d or aom for AV1) are
//! C libraries under the LGPL that every desktop already has or can install in one command
//! (Debian 12 ships libheif 1.15 with both). Building them into evatag would need cmake and the
//! decoders' sources on every build machine and would bind the binary to the LGPL's terms for
//! static linking; a pure-Rust HEVC decoder that reads phones' files does not exist. Loaded on
//! demand, the binary starts and reads every other format without libheif, and a missing
//! libheif costs one clear line per HEIF file instead of a failed start.
//!
//! Only the stable C API that libheif 1.13 already had is used, so any 1.x release from the
//! last years serves: 1.15 on Debian 12, 1.17 on Ubuntu 24.04, Homebrew's and vcpkg's current
//! ones. Releases before 1.16 upsample 4:2:0 chroma by repeating samples where later ones
//! interpolate, so their pixels differ slightly along colour edges (README, "Formats").

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

use libloading::Library;

/// The environment variable naming the libheif file to load instead of searching for one.
pub const LIBHEIF_ENV: &str = "EVATAG_LIBHEIF";

/// `heif_colorspace_RGB`.
const COLORSPACE_RGB: c_int = 1;
/// `heif_chroma_interleaved_RGB`, and `heif_channel_interleaved`: 8-bit RGB triplets.
const INTERLEAVED_RGB: c_int = 10;
/// `heif_error_Unsupported_feature`, and its `heif_suberror_Unsupported_codec`.
const UNSUPPORTED_FEATURE: c_int = 4;
const UNSUPPORTED_CODEC: c_int = 3000;
/// `heif_error_Decoder_plugin_error`, and its `heif_suberror_No_matching_decoder_installed`.
const DECODER_PLUGIN_ERROR: c_int = 7;
const NO_MATCHING_DECODER: c_int = 6003;

/// libheif's `struct heif_error`, returned by value from most calls.
#[repr(C)]
struct RawError {
    code: c_int,
    subcode: c_int,
    message: *const c_char,
}

/// The leading fields of libheif's `struct heif_decoding_options`, which the library allocates
/// at its own (larger) size; `convert_hdr_to_8bit` exists from version 2 of the struct on.
#[repr(C)]
struct DecodingOptions {
    version: u8,
    ignore_transformations: u8,
    start_progress: *const c_void,
    on_progress: *const c_void,
    end_progress: *const c_void,
    progress_user_data: *mut c_void,
    convert_hdr_to_8bit: u8,
}

type Opaque = c_void;

/// The functions evatag calls, resolved once from the loaded library.
struct Api {
    version: String,
    context_alloc: unsafe extern "C" fn() -> *mut Opaque,
    context_free: unsafe extern "C" fn(*mut Opaque),
    context_read_from_memory_without_copy:
        unsafe extern "C" fn(*mut Opaque, *const c_void, usize, *const c_void) -> RawError,
    context_get_primary_image_handle: unsafe extern "C" fn(*mut Opaque, *mut *mut Opaque) -> RawError,
    image_handle_get_width: unsafe extern "C" fn(*const Opaque) -> c_int,
    image_handle_get_height: unsafe extern "C" fn(*const Opaque) -> c_int,
    image_handle_release: unsafe extern "C" fn(*const Opaque),
    decoding_options_alloc: unsafe extern "C" fn() -> *mut DecodingOptions,
    decoding_options_free: unsafe extern "C" fn(*mut DecodingOptions),
    decode_image:
        unsafe extern "C" fn(*const Opaque, *mut *mut Opaque, c_int, c_int, *const DecodingOptions) -> RawError,
    image_get_plane_readonly: unsafe extern "C" fn(*const Opaque, c_int, *mut c_int) -> *const u8,
    image_get_width: unsafe extern "C" fn(*const Opaque, c_int) -> c_int,
    image_get_height: unsafe extern "C" fn(*const Opaque, c_int) -> c_int,
    image_get_bits_per_pixel: unsafe extern "C" fn(*const Opaque, c_int) -> c_int,
    image_release: unsafe extern "C" fn(*const Opaque),
    /// Kept open for the life of the process: the pointers above point into it.
    _library: Library,
}

/// Why libheif cannot be used on this computer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    /// No library file was found under any of the names tried.
    #[error("libheif was not found (tried {tried}); {INSTALL_HINT}")]
    NotFound {
        /// The names and paths tried, comma-separated.
        tried: String,
    },
    /// A library was found but lacks a function evatag needs.
    #[error("{path} is not a usable libheif ({reason}); {INSTALL_HINT}")]
    Unusable {
        /// The file that was loaded.
        path: String,
        /// What was missing.
        reason: String,
    },
}

/// What to do when libheif is missing, for every platform in one line.
const INSTALL_HINT: &str = "install libheif 1.13 or newer (Debian and Ubuntu: `apt install libheif1`, Fedora: \
                            `dnf install libheif`, macOS: `brew install libheif`, Windows: heif.dll from vcpkg's \
                            libheif beside evatag.exe, as evatag's installer puts it) or name its file in \
                            EVATAG_LIBHEIF";

/// A failed libheif call: its message, and whether it means that no decoder for the file's
/// codec is installed (as opposed to damaged data).
#[derive(Debug)]
pub struct CallError {
    /// libheif's message, on one line.
    pub message: String,
    /// True when libheif has no decoder plugin for the codec.
    pub missing_codec: bool,
}

/// libheif's version string, as the loaded library reports it.
pub fn version() -> Result<&'static str, Unavailable> {
    api().map(|api| api.version.as_str())
}

/// The process's libheif, loaded on first use.
fn api() -> Result<&'static Api, Unavailable> {
    static API: OnceLock<Result<Api, Unavailable>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// The names tried in turn, most specific first: `EVATAG_LIBHEIF` alone when it is set, else
/// the copy a package carries beside the executable, then the system's.
fn candidates() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os(LIBHEIF_ENV) {
        return vec![PathBuf::from(path)];
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from));
    let mut names = Vec::new();
    if cfg!(target_os = "macos") {
        if let Some(dir) = &beside_exe {
            names.push(dir.join("../Frameworks/libheif.1.dylib"));
        }
        names.extend(
            ["libheif.1.dylib", "/opt/homebrew/lib/libheif.1.dylib", "/usr/local/lib/libheif.1.dylib"]
                .map(PathBuf::from),
        );
    } else if cfg!(windows) {
        for name in ["heif.dll", "libheif.dll", "libheif-1.dll"] {
            if let Some(dir) = &beside_exe {
                names.push(dir.join(name));
            }
            names.push(PathBuf::from(name));
        }
    } else {
        if let Some(dir) = &beside_exe {
            // An AppImage carries libheif in usr/lib beside usr/bin.
            names.push(dir.join("../lib/libheif.so.1"));
        }
        names.extend(["libheif.so.1", "libheif.so"].map(PathBuf::from));
    }
    names
}

fn load() -> Result<Api, Unavailable> {
    let candidates = candidates();
    for path in &candidates {
        // SAFETY: loading libheif runs its (and its decoders') initialisers, which have no
        // preconditions; the search is limited to the names above.
        let Ok(library) = (unsafe { Library::new(path) }) else { continue };
        return resolve(library).map_err(|reason| Unavailable::Unusable { path: path.display().to_string(), reason });
    }
    let tried = candidates.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join(", ");
    Err(Unavailable::NotFound { tried })
}

/// Looks up every function evatag calls, and initialises libheif's plugins where the release
/// has them (1.13 and later load their decoders as plugins).
fn resolve(library: Library) -> Result<Api, String> {
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: the type each field declares is the function's C signature in libheif's
            // public headers, unchanged through the 1.x releases.
            *unsafe { library.get(concat!($name, "\0").as_bytes()) }.map_err(|_| format!("no {}", $name))?
        };
    }
    let get_version: unsafe extern "C" fn() -> *const c_char = symbol!("heif_get_version");
    // SAFETY: heif_get_version returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(get_version()) }.to_string_lossy().into_owned();
    let init: Option<unsafe extern "C" fn(*const c_void) -> RawError> =
        // SAFETY: as above; heif_init is optional (before 1.13 the decoders were built in).
        unsafe { library.get(b"heif_init\0") }.ok().map(|symbol| *symbol);
    if let Some(init) = init {
        // SAFETY: a null parameter block asks for the defaults; the call is reference-counted
        // and made once per process.
        let error = unsafe { init(std::ptr::null()) };
        if error.code != 0 {
            return Err(format!("its initialisation failed: {}", message_of(&error)));
        }
    }
    Ok(Api {
        version,
        context_alloc: symbol!("heif_context_alloc"),
        context_free: symbol!("heif_context_free"),
        context_read_from_memory_without_copy: symbol!("heif_context_read_from_memory_without_copy"),
        context_get_primary_image_handle: symbol!("heif_context_get_primary_image_handle"),
        image_handle_get_width: symbol!("heif_image_handle_get_width"),
        image_handle_get_height: symbol!("heif_image_handle_get_height"),
        image_handle_release: symbol!("heif_image_handle_release"),
        decoding_options_alloc: symbol!("heif_decoding_options_alloc"),
        decoding_options_free: symbol!("heif_decoding_options_free"),
        decode_image: symbol!("heif_decode_image"),
        image_get_plane_readonly: symbol!("heif_image_get_plane_readonly"),
        image_get_width: symbol!("heif_image_get_width"),
        image_get_height: symbol!("heif_image_get_height"),
        image_get_bits_per_pixel: symbol!("heif_image_get_bits_per_pixel"),
        image_release: symbol!("heif_image_release"),
        _library: library,
    })
}

/// libheif's message for `error`, on one line.
fn message_of(error: &RawError) -> String {
    match error.message.is_null() {
        true => format!("error {}.{}", error.code, error.subcode),
        // SAFETY: libheif's messages are NUL-terminated strings that live as long as the
        // context that produced them, which outlives this call.
        false => {
            unsafe { CStr::from_ptr(error.message) }.to_string_lossy().split_whitespace().collect::<Vec<_>>().join(" ")
        }
    }
}

fn check(error: RawError) -> Result<(), CallError> {
    if error.code == 0 {
        return Ok(());
    }
    let missing_codec = matches!(
        (error.code, error.subcode),
        (UNSUPPORTED_FEATURE, UNSUPPORTED_CODEC) | (DECODER_PLUGIN_ERROR, NO_MATCHING_DECODER)
    );
    Err(CallError { message: message_of(&error), missing_codec })
}

fn call_error(message: &str) -> CallError {
    CallError { message: message.to_owned(), missing_codec: false }
}

/// A HEIF file parsed by libheif, borrowing the bytes it was read from.
pub struct Context<'a> {
    api: &'static Api,
    raw: *mut Opaque,
    _bytes: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Context<'a> {
    /// Parses the boxes of a HEIF file (no pixels are decoded yet).
    pub fn read(bytes: &'a [u8]) -> Result<Result<Self, CallError>, Unavailable> {
        let api = api()?;
        // SAFETY: heif_context_alloc has no preconditions.
        let raw = unsafe { (api.context_alloc)() };
        if raw.is_null() {
            return Ok(Err(call_error("libheif could not allocate a context")));
        }
        let context = Self { api, raw, _bytes: std::marker::PhantomData };
        // SAFETY: `bytes` outlives the context (its lifetime is tied to 'a), as reading
        // without a copy requires.
        let read = unsafe {
            (api.context_read_from_memory_without_copy)(raw, bytes.as_ptr().cast(), bytes.len(), std::ptr::null())
        };
        Ok(check(read).map(|()| context))
    }

    /// The file's primary image, as the file says it is shown.
    pub fn primary_image(&self) -> Result<ImageHandle<'_>, CallError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: the context is valid; libheif writes a new handle to `raw` on success.
        check(unsafe { (self.api.context_get_primary_image_handle)(self.raw, &mut raw) })?;
        Ok(ImageHandle { api: self.api, raw, _context: std::marker::PhantomData })
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: the context was allocated by libheif and every handle borrowing it is gone.
        unsafe { (self.api.context_free)(self.raw) }
    }
}

/// One image of a [`Context`].
pub struct ImageHandle<'c> {
    api: &'static Api,
    raw: *mut Opaque,
    _context: std::marker::PhantomData<&'c ()>,
}

impl ImageHandle<'_> {
    /// Width and height as shown: rotation, mirroring and cropping applied.
    pub fn size(&self) -> (u32, u32) {
        // SAFETY: the handle is valid while `self` lives.
        let (width, height) =
            unsafe { ((self.api.image_handle_get_width)(self.raw), (self.api.image_handle_get_height)(self.raw)) };
        (width.max(0) as u32, height.max(0) as u32)
    }

    /// Decodes the image to 8-bit RGB rows, with the container's rotation, mirroring and
    /// cropping applied and deeper samples reduced to 8 bits by libheif.
    pub fn decode_rgb8(&self) -> Result<(u32, u32, Vec<u8>), CallError> {
        let api = self.api;
        // SAFETY: heif_decoding_options_alloc returns the library's defaults, or null.
        let options = unsafe { (api.decoding_options_alloc)() };
        if options.is_null() {
            return Err(call_error("libheif could not allocate its decoding options"));
        }
        // SAFETY: `options` is a live struct of at least the fields its version declares.
        unsafe {
            if (*options).version >= 2 {
                (*options).convert_hdr_to_8bit = 1;
            }
        }
        let mut image = std::ptr::null_mut();
        // SAFETY: handle and options are valid; libheif writes a new image on success.
        let decoded = unsafe { (api.decode_image)(self.raw, &mut image, COLORSPACE_RGB, INTERLEAVED_RGB, options) };
        // SAFETY: the options were allocated above and are no longer used.
        unsafe { (api.decoding_options_free)(options) };
        check(decoded)?;
        let image = Image { api, raw: image };
        image.rgb8_rows()
    }
}

impl Drop for ImageHandle<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from libheif and is released once.
        unsafe { (self.api.image_handle_release)(self.raw) }
    }
}

/// A decoded picture, owned until dropped.
struct Image {
    api: &'static Api,
    raw: *mut Opaque,
}

impl Image {
    /// The interleaved 8-bit RGB plane, copied row by row without its padding.
    fn rgb8_rows(&self) -> Result<(u32, u32, Vec<u8>), CallError> {
        let api = self.api;
        let mut stride: c_int = 0;
        // SAFETY: the image is valid; the plane pointer lives as long as the image.
        let (plane, width, height, bits) = unsafe {
            (
                (api.image_get_plane_readonly)(self.raw, INTERLEAVED_RGB, &mut stride),
                (api.image_get_width)(self.raw, INTERLEAVED_RGB),
                (api.image_get_height)(self.raw, INTERLEAVED_RGB),
                (api.image_get_bits_per_pixel)(self.raw, INTERLEAVED_RGB),
            )
        };
        let (Ok(width), Ok(height), Ok(stride)) =
            (usize::try_from(width), usize::try_from(height), usize::try_from(stride))
        else {
            return Err(call_error("libheif gave a picture of negative size"));
        };
        let row_len = width * 3;
        if plane.is_null() || bits != 24 || stride < row_len || row_len == 0 || height == 0 {
            return Err(call_error("libheif gave no 8-bit RGB picture"));
        }
        // SAFETY: libheif's plane holds `height` rows of `stride` bytes, the last one at least
        // `row_len` long.
        let data = unsafe { std::slice::from_raw_parts(plane, stride * (height - 1) + row_len) };
        let mut pixels = Vec::with_capacity(row_len * height);
        for row in 0..height {
            pixels.extend_from_slice(&data[row * stride..row * stride + row_len]);
        }
        Ok((width as u32, height as u32, pixels))
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: the image came from libheif and is released once.
        unsafe { (self.api.image_release)(self.raw) }
    }
}
