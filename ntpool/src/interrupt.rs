//! [`Interrupt`]: code synchronized with a device's interrupt service routine
//! (`KeSynchronizeExecution`), which runs at the interrupt's device IRQL with a [`High`] token.
//!
//! The routine runs above `DISPATCH_LEVEL`, where nothing may be allocated or freed: its context
//! must be [`HighSafe`], and it is a plain `fn` that reaches only that context, as in
//! [`Dispatch::raise_above_dispatch`](crate::Dispatch::raise_above_dispatch). The token the
//! caller holds is borrowed for the call.
//!
//! What cannot be typed here: connecting the interrupt (`IoConnectInterrupt(Ex)`) needs the
//! device's translated resources, which only a PnP driver of real hardware has; the ISR itself is
//! called by the kernel with the interrupt object and its context, and would get a `High` token the
//! same way. The emulated kernel makes interrupt objects for tests
//! (`ntpool::sys::emulated::irp::connect_interrupt`) and never calls an ISR.

use crate::irql::{AtMostDispatch, High};
use crate::safe::HighSafe;
use crate::sys::{self, BOOLEAN, PKINTERRUPT, PVOID};

/// A connected interrupt object, for [`Interrupt::synchronize`].
///
/// # Invariants
/// `interrupt` is a connected interrupt object that outlives this handle.
#[derive(Debug)]
pub struct Interrupt {
    interrupt: PKINTERRUPT,
}

// SAFETY: KeSynchronizeExecution may be called from any thread.
unsafe impl Send for Interrupt {}
// SAFETY: as above.
unsafe impl Sync for Interrupt {}
// SAFETY: a handle: it owns nothing and reaches only the interrupt object, which is non-paged;
// KeSynchronizeExecution may be called at up to DISPATCH_LEVEL. (Not `HighSafe`: above
// DISPATCH_LEVEL the caller may already be at or above the synchronize IRQL.)
unsafe impl crate::safe::DispatchSafe for Interrupt {}

/// What the trampoline needs, on the caller's stack.
struct Call<C, R> {
    routine: fn(&mut High, C) -> R,
    context: Option<C>,
    result: Option<R>,
}

/// The `KSYNCHRONIZE_ROUTINE` of [`Interrupt::synchronize`].
///
/// # Safety
/// Called by `KeSynchronizeExecution` at the interrupt's synchronize IRQL with the `Call` that
/// `synchronize` passed.
unsafe extern "system" fn synchronized<C: HighSafe, R>(call: PVOID) -> BOOLEAN {
    // SAFETY: the `Call` on `synchronize`'s stack, which it does not touch during this call.
    let call = unsafe { &mut *call.cast::<Call<C, R>>() };
    if let Some(context) = call.context.take() {
        // Above DISPATCH_LEVEL: the token lives for the routine, which reaches only its context.
        call.result = Some((call.routine)(&mut High::new(), context));
    }
    1
}

impl Interrupt {
    /// The interrupt object `IoConnectInterrupt` (or `IoConnectInterruptEx`) returned.
    ///
    /// # Safety
    /// `interrupt` is a connected interrupt object that stays connected while this handle lives.
    pub unsafe fn from_raw(interrupt: PKINTERRUPT) -> Self {
        Interrupt { interrupt }
    }

    /// Runs `f` with a [`High`] token and `context` synchronized with the ISR
    /// (`KeSynchronizeExecution`: at the interrupt's synchronize IRQL, holding its spin lock), and
    /// returns its result. The caller's token is borrowed for the call.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use ntpool::{Interrupt, Passive};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { Passive::assume() };
    /// let raw = ntpool::sys::emulated::irp::connect_interrupt(6); // a device IRQL
    /// // SAFETY: connected above, disconnected below after the last use.
    /// let interrupt = unsafe { Interrupt::from_raw(raw) };
    /// let registers = AtomicU32::new(0);
    /// let irql = interrupt.synchronize(&mut passive, &registers, |_high, registers| {
    ///     registers.store(1, Ordering::Relaxed); // what the ISR also touches
    ///     ntpool::sys::KeGetCurrentIrql()
    /// });
    /// assert_eq!(irql, 6);
    /// // SAFETY: not used afterwards.
    /// unsafe { ntpool::sys::emulated::irp::disconnect_interrupt(raw) };
    /// # });
    /// ```
    pub fn synchronize<C: HighSafe, R>(
        &self,
        _token: &mut impl AtMostDispatch,
        context: C,
        f: fn(&mut High, C) -> R,
    ) -> R {
        let mut call = Call { routine: f, context: Some(context), result: None };
        let pointer: *mut Call<C, R> = &mut call;
        // SAFETY: a connected interrupt (invariant); the routine and its context (on this stack)
        // are valid for the call; the caller's IRQL is at most DISPATCH_LEVEL (token), below the
        // synchronize IRQL.
        unsafe { sys::KeSynchronizeExecution(self.interrupt, Some(synchronized::<C, R>), pointer.cast()) };
        match call.result {
            Some(result) => result,
            // KeSynchronizeExecution always calls the routine.
            None => unreachable!("KeSynchronizeExecution did not call the routine"),
        }
    }
}
