//! `cargo xtask emulate`: the sample driver on ntpool's emulated kernel (Driver Verifier's checks
//! on): `DriverEntry` and `DriverUnload` run, with the driver's debug output and a poolmon-style
//! table of what it allocated and freed.

use ntpool::emulated::Kernel;
use ntpool_driver::host;

/// Loads the sample driver on the emulated kernel, unloads it, and prints what it did; fails when
/// `DriverEntry` fails or the emulated Driver Verifier finds a violation or a leak.
pub fn run() -> Result<(), String> {
    let kernel = Kernel::builder().driver_name("ntpool_driver.sys").build();
    println!("Loading ntpool_driver on the emulated kernel (Driver Verifier checks on)\n");
    let (status, after_entry, unload_output) = kernel.run(|| {
        let loaded = host::load();
        for line in &loaded.output {
            println!("  DbgPrint: {line}");
        }
        println!("  DriverEntry returned {:#010x}\n", loaded.status as u32);
        let after_entry = kernel.pool_usage();
        let unload_output = loaded.driver.map(host::LoadedDriver::unload).unwrap_or_default();
        (loaded.status, after_entry, unload_output)
    });
    println!("Pool in use while loaded:\n{after_entry}");
    for line in &unload_output {
        println!("  DbgPrint: {line}");
    }
    println!("\nPool after DriverUnload (allocations and frees per tag):\n{}", kernel.pool_usage());
    if status < 0 {
        return Err(format!("DriverEntry failed with {:#010x}", status as u32));
    }
    kernel.verify_unload().map_err(|bug_check| bug_check.to_string())?;
    println!("Driver Verifier (emulated): no violation, nothing leaked.");
    Ok(())
}
