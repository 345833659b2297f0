//! The hostile-input table (`ntpool_client::hostile::CASES`, shown in `docs/hostile-inputs.md`) on
//! the emulated kernel: every row gets its NTSTATUS from the driver's code, with Driver Verifier's
//! checks on, and nothing leaks. `cargo xtask wine` runs the same rows against the real `.sys`.

use std::sync::Mutex;

use ntpool::emulated::Kernel;
use ntpool_client::hostile::{CASES, Devices, run_table};
use ntpool_driver::host::{self, Handle, LoadedDriver};

/// The driver keeps global state, as a driver does: one load at a time.
static ONE_DRIVER: Mutex<()> = Mutex::new(());

/// Handles to the driver on the emulated kernel, by index.
struct Emulated<'a> {
    driver: &'a LoadedDriver,
    handles: Vec<Option<Handle<'a>>>,
}

impl Devices for Emulated<'_> {
    fn open(&mut self) -> Option<usize> {
        let handle = self.driver.open().ok()?;
        self.handles.push(Some(handle));
        Some(self.handles.len() - 1)
    }

    fn control(&mut self, handle: usize, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        let handle = self.handles[handle].as_ref().expect("an open handle");
        let (status, reply) = handle.device_control(code, input, output.len());
        output[..reply.len()].copy_from_slice(&reply);
        (status, reply.len())
    }

    fn close(&mut self, handle: usize) {
        self.handles[handle] = None;
    }
}

/// Runs the table on a freshly loaded driver; its output.
fn run(kernel: &Kernel) -> (ntpool_client::Summary, String) {
    kernel.run(|| {
        let driver = host::load().driver.expect("loaded");
        let mut out = String::new();
        let summary = {
            let mut devices = Emulated { driver: &driver, handles: Vec::new() };
            run_table(&mut devices, &mut out)
        };
        driver.unload();
        (summary, out)
    })
}

#[test]
fn every_row_of_the_hostile_input_table_gets_its_status_on_the_emulated_kernel() {
    let _one = ONE_DRIVER.lock().unwrap_or_else(|p| p.into_inner());
    let kernel = Kernel::builder().driver_name("ntpool_driver.sys").build();
    let (summary, out) = run(&kernel);
    println!("{out}");
    assert_eq!((summary.passed, summary.failed), (CASES.len() as u32, 0), "{out}");
    let ok_lines = out.lines().filter(|line| line.starts_with("ok   #")).count();
    assert_eq!(ok_lines, CASES.len(), "{out}");
    if let Err(leak) = kernel.verify_unload() {
        panic!("{leak}");
    }
}
