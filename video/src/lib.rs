//! `ntpool-video`: a sample video miniport driver (XPDM, linked against `videoprt.sys`) that
//! allocates every block through ntpool's VideoPort pool ([`ntpool::videoport::VpBox`]).
//!
//! * `DriverEntry` hands a `VIDEO_HW_INITIALIZATION_DATA` to `VideoPortInitialize`, as every video
//!   miniport does.
//! * [`HwFindAdapter`] (`PASSIVE_LEVEL`) receives the `HwDeviceExtension` and allocates from all four
//!   `VP_POOL_TYPE`s: a mode table (`VpPagedPool`, kept in the device extension for
//!   `HwInitialize`), an EDID copy (`VpPagedPoolCacheAligned`, checked and freed at once), the frame
//!   state (`VpNonPagedPool`, kept in the device extension).
//! * [`HwInitialize`] (`PASSIVE_LEVEL`) takes both kept blocks back, frees the mode table, and at
//!   `DISPATCH_LEVEL` allocates a scanline (`VpNonPagedPoolCacheAligned`), fills it, and frees it and
//!   the frame state there, as `VideoPortFreePool` allows for `VpNonPaged*` memory.
//! * [`HwStartIO`] answers every request with `ERROR_INVALID_FUNCTION`.
//!
//! Every tag starts with `D`, the convention for display drivers. The miniport drives no hardware
//! and keeps no memory after `HwInitialize`: nothing is left to free when the driver unloads (video
//! miniports have no unload callback of their own). The same code runs on Windows, under Wine with
//! the project's `videoprt.sys` test fixture, and on ntpool's emulated kernel (`tests/`).
#![no_std]

#[cfg(not(windows))]
extern crate std;

#[cfg(not(windows))]
pub mod host;
pub mod videoprt;

use ntpool::sys::PVOID;
use ntpool::videoport::{
    HwDeviceExtension, VpBox, VpNonPagedPool, VpNonPagedPoolCacheAligned, VpPagedPool, VpPagedPoolCacheAligned,
};
use ntpool::{AllocError, DispatchSafe, Passive};
use videoprt::{
    BOOLEAN, ERROR_DEV_NOT_EXIST, ERROR_INVALID_FUNCTION, ERROR_NOT_ENOUGH_MEMORY, FALSE, NO_ERROR, TRUE, ULONG,
    VIDEO_HW_INITIALIZATION_DATA, VIDEO_PORT_CONFIG_INFO, VIDEO_REQUEST_PACKET, VP_STATUS,
};

ntpool::pool_tag! {
    /// The mode table (`VpPagedPool`).
    pub struct ModeTag = b"DvMd";
}
ntpool::pool_tag! {
    /// The EDID copy (`VpPagedPoolCacheAligned`).
    pub struct EdidTag = b"DvEd";
}
ntpool::pool_tag! {
    /// The frame state (`VpNonPagedPool`).
    pub struct FrameTag = b"DvFs";
}
ntpool::pool_tag! {
    /// The scanline buffer (`VpNonPagedPoolCacheAligned`), used at `DISPATCH_LEVEL`.
    pub struct ScanlineTag = b"DvSl";
}

/// The display modes the miniport offers: width and height.
pub const MODES: [[u32; 2]; 4] = [[640, 480], [800, 600], [1024, 768], [1280, 1024]];
/// A fixed EDID block header (the eight bytes every EDID starts with), then zeros: 128 bytes.
pub const EDID_HEADER: [u8; 8] = [0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];
/// The bytes of one scanline.
pub const SCANLINE: usize = 256;

/// What the miniport keeps about its frame, in non-paged memory (touched at `DISPATCH_LEVEL`).
#[derive(Clone, Copy, Debug, Default, DispatchSafe)]
pub struct FrameState {
    /// The current mode's index in [`MODES`].
    pub mode: u32,
    /// Scanlines drawn.
    pub lines: u32,
    /// The sum of the bytes of the last scanline.
    pub checksum: u32,
}

/// The miniport's device extension (`HwDeviceExtensionSize` bytes, allocated and zeroed by the video
/// port driver). `HwFindAdapter` writes it whole; `HwInitialize` takes the blocks back out.
pub struct DeviceExtension {
    /// Allocated by `HwFindAdapter`, freed by `HwInitialize`.
    pub modes: Option<VpBox<[[u32; 2]; 4], ModeTag, VpPagedPool>>,
    /// Allocated by `HwFindAdapter`, freed by `HwInitialize` at `DISPATCH_LEVEL`.
    pub frame: Option<VpBox<FrameState, FrameTag, VpNonPagedPool>>,
}

/// The video miniport's entry point: registers the miniport's callbacks with the video port driver.
///
/// # Safety
/// Called by the I/O manager at `PASSIVE_LEVEL` with the driver object and registry path, which go
/// to `VideoPortInitialize` untouched (as `Context1` and `Context2`).
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
pub unsafe extern "system" fn DriverEntry(context1: PVOID, context2: PVOID) -> ULONG {
    let data = VIDEO_HW_INITIALIZATION_DATA {
        HwInitDataSize: core::mem::size_of::<VIDEO_HW_INITIALIZATION_DATA>() as ULONG,
        AdapterInterfaceType: videoprt::Internal,
        HwFindAdapter: ntpool::videoport::hw_find_adapter::<FindAdapter>(),
        HwInitialize: ntpool::videoport::hw_initialize::<Initialize>(),
        HwInterrupt: core::ptr::null_mut(),
        HwStartIO: Some(HwStartIO),
        HwDeviceExtensionSize: core::mem::size_of::<DeviceExtension>() as ULONG,
        StartingDeviceNumber: 0,
        HwResetHw: core::ptr::null_mut(),
        HwTimer: core::ptr::null_mut(),
        HwStartDma: core::ptr::null_mut(),
        HwSetPowerState: core::ptr::null_mut(),
        HwGetPowerState: core::ptr::null_mut(),
        HwGetVideoChildDescriptor: core::ptr::null_mut(),
        HwQueryInterface: core::ptr::null_mut(),
        HwChildDeviceExtensionSize: 0,
        HwLegacyResourceList: core::ptr::null_mut(),
        HwLegacyResourceCount: 0,
        HwGetLegacyResources: core::ptr::null_mut(),
        AllowEarlyEnumeration: 0,
        Reserved: 0,
    };
    debug_print!("DriverEntry: VideoPortInitialize");
    // SAFETY: at PASSIVE_LEVEL, with what DriverEntry received and a complete initialization data.
    let status = unsafe { videoprt::VideoPortInitialize(context1, context2, &data, core::ptr::null_mut()) };
    debug_print!("DriverEntry: VideoPortInitialize returned {:#010x}", status);
    status
}

/// `HwFindAdapter`: allocates in all four VideoPort pools (see the crate documentation) and fills
/// in the device extension. Called by the video port driver at `PASSIVE_LEVEL` through ntpool's
/// trampoline ([`ntpool::videoport::hw_find_adapter`]), with the miniport's zeroed device extension
/// of `size_of::<DeviceExtension>()` bytes.
pub struct FindAdapter;

impl ntpool::videoport::HwFindAdapter for FindAdapter {
    fn find_adapter(
        device: Option<HwDeviceExtension>,
        _hw_context: PVOID,
        _argument_string: *mut u16,
        _config_info: *mut VIDEO_PORT_CONFIG_INFO,
        again: Option<&mut u8>,
        passive: &mut Passive,
    ) -> VP_STATUS {
        if let Some(again) = again {
            *again = 0;
        }
        let Some(device) = device else {
            return ERROR_DEV_NOT_EXIST;
        };
        match find_adapter(passive, device) {
            Ok(extension) => {
                // SAFETY: the extension is ours, `size_of::<DeviceExtension>()` bytes and aligned for
                // it (pool alignment); it holds no value yet, so it is written, not assigned.
                unsafe { device.as_ptr().cast::<DeviceExtension>().write(extension) };
                debug_print!("HwFindAdapter: adapter found, {} modes", MODES.len());
                NO_ERROR
            }
            Err(AllocError) => {
                debug_print!("HwFindAdapter: out of memory");
                ERROR_NOT_ENOUGH_MEMORY
            }
        }
    }
}

fn find_adapter(passive: &Passive, device: HwDeviceExtension) -> Result<DeviceExtension, AllocError> {
    let modes = VpBox::<[[u32; 2]; 4], ModeTag, VpPagedPool>::try_new(passive, device, MODES)?;

    let mut edid = VpBox::<[u8], EdidTag, VpPagedPoolCacheAligned>::try_from_slice(passive, device, &[0; 128])?;
    edid.get_mut(passive)[..EDID_HEADER.len()].copy_from_slice(&EDID_HEADER);
    let valid = edid.get(passive).starts_with(&EDID_HEADER);
    drop(edid); // VideoPortFreePool at PASSIVE_LEVEL
    debug_print!("HwFindAdapter: EDID header {}", if valid { "valid" } else { "INVALID" });

    let frame = VpBox::<FrameState, FrameTag, VpNonPagedPool>::try_new(passive, device, FrameState::default())?;
    Ok(DeviceExtension { modes: Some(modes), frame: Some(frame) })
}

/// `HwInitialize`: frees the mode table, then draws a scanline at `DISPATCH_LEVEL` and frees the
/// scanline and the frame state there. Called by the video port driver at `PASSIVE_LEVEL` through
/// ntpool's trampoline ([`ntpool::videoport::hw_initialize`]), after `HwFindAdapter` succeeded for
/// this device extension.
pub struct Initialize;

impl ntpool::videoport::HwInitialize for Initialize {
    fn initialize(device: Option<HwDeviceExtension>, passive: &mut Passive) -> BOOLEAN {
        let Some(device) = device else {
            return FALSE;
        };
        // SAFETY: HwFindAdapter wrote a DeviceExtension there, and the video port driver calls the
        // miniport's callbacks for one adapter one at a time.
        let extension = unsafe { &mut *device.as_ptr().cast::<DeviceExtension>() };
        let (Some(modes), Some(frame)) = (extension.modes.take(), extension.frame.take()) else {
            return FALSE;
        };
        initialize(passive, device, modes, frame)
    }
}

/// What [`Initialize`] does with the two kept blocks.
fn initialize(
    passive: &mut Passive,
    device: HwDeviceExtension,
    modes: VpBox<[[u32; 2]; 4], ModeTag, VpPagedPool>,
    frame: VpBox<FrameState, FrameTag, VpNonPagedPool>,
) -> BOOLEAN {
    let largest = modes.get(passive).iter().map(|[width, height]| width * height).max().unwrap_or(0);
    drop(modes); // VideoPortFreePool at PASSIVE_LEVEL

    let drawn = passive.raise_to_dispatch((frame, device), |dispatch, (mut frame, device)| {
        let line = VpBox::<[u8; SCANLINE], ScanlineTag, VpNonPagedPoolCacheAligned>::try_new(
            dispatch,
            device,
            core::array::from_fn(|i| i as u8),
        );
        let Ok(line) = line else { return None };
        frame.lines += 1;
        frame.checksum = line.iter().map(|&byte| u32::from(byte)).sum();
        Some(*frame)
        // `line` and `frame` are dropped here: VideoPortFreePool at DISPATCH_LEVEL, legal for
        // VpNonPaged* memory.
    });
    match drawn {
        Some(frame) => {
            debug_print!(
                "HwInitialize: largest mode {} pixels, {} scanline, checksum {}",
                largest,
                frame.lines,
                frame.checksum
            );
            TRUE
        }
        None => {
            debug_print!("HwInitialize: out of memory");
            FALSE
        }
    }
}

/// `HwStartIO`: the miniport implements no video request; each is answered `ERROR_INVALID_FUNCTION`.
///
/// # Safety
/// Called by the video port driver with a valid request packet.
#[allow(non_snake_case)]
pub unsafe extern "system" fn HwStartIO(_hw_device_extension: PVOID, packet: *mut VIDEO_REQUEST_PACKET) -> BOOLEAN {
    // SAFETY: the video port driver passes a valid packet with a valid status block.
    let status = unsafe { (*packet).StatusBlock };
    if !status.is_null() {
        // SAFETY: as above.
        unsafe { status.write(videoprt::STATUS_BLOCK { Status: ERROR_INVALID_FUNCTION as usize, Information: 0 }) };
    }
    TRUE
}

/// `DbgPrint` with Rust formatting, each line prefixed `ntpool-video: ` (see
/// `ntpool_kernel_support::debug_print!`).
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {
        ntpool_kernel_support::debug_print!($crate::videoprt::DbgPrint, "ntpool-video: ", $($arg)*)
    };
}

/// `alloc` is linked (ntpool's `allocator_api2` support needs it), so the kernel build needs a
/// global allocator; the miniport uses no `alloc` collection and allocates only VideoPort pool, so
/// this one has no memory to give: every request fails (null), which `GlobalAlloc` allows.
#[cfg(windows)]
struct NoGlobalAllocations;

// SAFETY: `alloc` never returns memory, so there is nothing to free or misuse.
#[cfg(windows)]
unsafe impl core::alloc::GlobalAlloc for NoGlobalAllocations {
    unsafe fn alloc(&self, _layout: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _block: *mut u8, _layout: core::alloc::Layout) {}
}

#[cfg(windows)]
#[global_allocator]
static GLOBAL: NoGlobalAllocations = NoGlobalAllocations;

// The panic handler (a bug check) and `_fltused` of the kernel image.
#[cfg(windows)]
ntpool_kernel_support::kernel_image_runtime!();
