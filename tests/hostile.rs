//! The hostile-input table (`ntpool_client::hostile::CASES`, shown in `docs/hostile-inputs.md`) on
//! the emulated kernel: every row gets its NTSTATUS from the driver's code, with Driver Verifier's
//! checks on, and nothing leaks. `cargo xtask wine` runs the same rows against the real `.sys`.

mod common;

use common::{Emulated, EmulatedHandles, Exchange, Watched, assert_no_leak, driver_kernel, one_driver};
use ntpool::emulated::Kernel;
use ntpool_client::hostile::{CASES, Devices, run_table};
use ntpool_driver::host;

/// Runs the table on a freshly loaded driver; its output.
fn run(kernel: &Kernel) -> (ntpool_client::Summary, String) {
    kernel.run(|| {
        let driver = host::load().driver.expect("loaded");
        let mut out = String::new();
        let summary = {
            let mut devices = EmulatedHandles::new(&driver);
            run_table(&mut devices, &mut out)
        };
        driver.unload();
        (summary, out)
    })
}

#[test]
fn every_row_of_the_hostile_input_table_gets_its_status_on_the_emulated_kernel() {
    let _one = one_driver();
    let kernel = driver_kernel().build();
    let (summary, out) = run(&kernel);
    println!("{out}");
    assert_eq!((summary.passed, summary.failed), (CASES.len() as u32, 0), "{out}");
    let ok_lines = out.lines().filter(|line| line.starts_with("ok   #")).count();
    assert_eq!(ok_lines, CASES.len(), "{out}");
    assert_no_leak(&kernel);
}

/// One request and its answer, as user mode saw it, kept.
#[derive(Debug, PartialEq, Eq)]
struct Recorded {
    code: u32,
    input: Vec<u8>,
    output_length: usize,
    status: i32,
    /// The `Information` bytes the I/O manager copied back.
    returned: Vec<u8>,
}

/// Records every request and answer, and checks that no returned 8 bytes hold an address inside a
/// live pool block or the device object (a kernel address).
struct Recorder<'k> {
    kernel: &'k Kernel,
    device: usize,
    exchanges: Vec<Recorded>,
    addresses: Vec<String>,
}

impl Recorder<'_> {
    fn record(&mut self, exchange: &Exchange<'_>) {
        let &Exchange { code, input, output_length, status, returned } = exchange;
        let blocks = self.kernel.outstanding();
        for (offset, window) in returned.windows(8).enumerate() {
            let value = usize::from_le_bytes(window.try_into().expect("8 bytes"));
            let in_block =
                blocks.iter().find(|block| (block.address..block.address + block.size.max(1)).contains(&value));
            let device = (self.device..self.device + 0x150).contains(&value);
            if let Some(block) = in_block {
                self.addresses.push(format!("IOCTL {code:#x} returned {value:#x} at {offset}: inside {block}"));
            } else if device {
                self.addresses.push(format!("IOCTL {code:#x} returned {value:#x} at {offset}: the device object"));
            }
        }
        self.exchanges.push(Recorded {
            code,
            input: input.to_vec(),
            output_length,
            status,
            returned: returned.to_vec(),
        });
    }
}

/// Loads the driver on a kernel that fills non-zeroed pool with `pool_fill`, with system buffers
/// filled with `buffer_fill`, runs the client's scenario and the hostile-input table, and returns
/// every exchange.
fn record_everything(pool_fill: u8, buffer_fill: u8) -> Vec<Recorded> {
    let kernel = driver_kernel().uninitialized_fill(pool_fill).build();
    let exchanges = kernel.run(|| {
        host::set_system_buffer_fill(buffer_fill);
        let driver = host::load().driver.expect("loaded");
        let mut recorder = Recorder {
            kernel: &kernel,
            device: driver.device() as usize,
            exchanges: Vec::new(),
            addresses: Vec::new(),
        };
        let mut out = String::new();
        {
            let handle = driver.open().expect("opens");
            // Whether its checks pass is tested elsewhere: here, only what comes back counts.
            let mut device = Watched::new(Emulated(&handle), |exchange| recorder.record(exchange));
            ntpool_client::run_scenario(&mut device, &mut out);
        }
        {
            let mut devices = Watched::new(EmulatedHandles::new(&driver), |exchange| recorder.record(exchange));
            run_table(&mut devices, &mut out);
        }
        driver.unload();
        host::set_system_buffer_fill(0xCD);
        assert!(
            recorder.addresses.is_empty(),
            "kernel addresses reached user mode:\n{}",
            recorder.addresses.join("\n")
        );
        recorder.exchanges
    });
    assert_no_leak(&kernel);
    exchanges
}

/// No uninitialized byte reaches user mode: the scenario and the table, run once with non-zeroed
/// pool and system buffers filled with one pattern and once with another, return the same bytes
/// (within `Information`; the I/O manager copies back nothing else) for every request. And no
/// returned 8 bytes point into a live pool block or the device object.
#[test]
fn every_byte_returned_to_user_mode_is_the_same_whatever_uninitialized_memory_holds() {
    let _one = one_driver();
    let first = record_everything(0xCD, 0xCD);
    let second = record_everything(0x5A, 0x33);
    assert!(first.len() > 500, "{} exchanges", first.len());
    let returned: usize = first.iter().map(|exchange| exchange.returned.len()).sum();
    assert!(returned > 10_000, "{returned} bytes returned");
    assert_eq!(first.len(), second.len());
    for (index, (a, b)) in first.iter().zip(&second).enumerate() {
        assert_eq!(a, b, "exchange {index} differs between the two fills");
    }
    println!("{} requests, {returned} bytes returned to user mode, identical under both fills", first.len());
}

/// The soak worker that `ntpool-client.exe --soak` runs on each thread passes against the driver on
/// the emulated kernel: the workers one after another, each with its own handle, while another
/// handle holds a block.
#[test]
fn the_soak_worker_passes_on_the_emulated_kernel() {
    use ntpool_client::soak::{REQUESTS_PER_STEP, SoakReport, soak_worker};

    let _one = one_driver();
    let kernel = driver_kernel().build();
    let total = kernel.run(|| {
        let driver = host::load().driver.expect("loaded");
        let mut devices = EmulatedHandles::new(&driver);
        let mut total = SoakReport::default();
        // A block of another handle stays outstanding meanwhile: workers must not see it.
        let other = devices.open().expect("opens");
        let request =
            ntpool_protocol::AllocateRequest { pool: 1, tag: u32::from_le_bytes(*b"Othr"), size: 8, reserved: 0 };
        let mut reply = [0; 8];
        assert_eq!(
            devices.control(
                other,
                ntpool_protocol::IOCTL_NTPOOL_ALLOCATE,
                ntpool_protocol::Wire::as_bytes(&request),
                &mut reply
            ),
            (0, 8)
        );
        for worker in 0..4 {
            let handle = driver.open().expect("opens");
            let report = soak_worker(&mut Emulated(&handle), worker, 25);
            assert!(report.all_passed(), "worker {worker}: {report:?}");
            total.add(&report);
        }
        drop(devices);
        driver.unload();
        total
    });
    assert_eq!(total.requests, 4 * (25 * u64::from(REQUESTS_PER_STEP) + 1));
    assert_eq!((total.allocations, total.frees), (100, 100));
    assert_no_leak(&kernel);
}
