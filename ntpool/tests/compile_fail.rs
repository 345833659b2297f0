//! The IRQL, tag and pool rules, checked by the compiler: each case under `tests/ui/fail` must fail to
//! compile with the error recorded beside it, and each case under `tests/ui/pass` (the legitimate
//! patterns) must compile and run on the emulated kernel. The cases of the `videoport` feature are
//! under `tests/ui/videoport/` and run when the feature is on: in the workspace, where ntpool's own
//! dev-dependency on itself turns it on, and in the published package with `cargo test --all-features`
//! (packaging drops that dev-dependency; `cargo xtask package` runs the package's tests so).

#[test]
fn irql_tag_and_pool_rules_are_enforced_at_compile_time() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
    if cfg!(feature = "videoport") {
        cases.compile_fail("tests/ui/videoport/fail/*.rs");
        cases.pass("tests/ui/videoport/pass/*.rs");
    }
}

/// What each compile-fail case must be rejected for: a phrase its recorded error has to contain, so
/// that a case cannot pass by failing for some other reason (a typo, a missing import).
const REASONS: &[(&str, &str)] = &[
    ("k7_paged_box_in_completion_context", "required for `PoolBox<u32, Tg, PagedPool>` to implement `DispatchSafe`"),
    (
        "k7_paged_box_in_interrupt_context",
        "`PoolBox<u32, Tg, PagedPool>` may own pool memory or reach paged memory, so it cannot enter code that runs above DISPATCH_LEVEL",
    ),
    (
        "k8_capturing_closure_as_thread_body",
        "closures can only be coerced to `fn` types if they do not capture any variables",
    ),
    ("k8_completion_token_escapes", "lifetime may not live long enough"),
    (
        "k9_paged_reference_as_completion_context",
        "cannot borrow `passive` as immutable because it is also borrowed as mutable",
    ),
    (
        "k9_paged_reference_as_dpc_context",
        "cannot borrow `passive` as mutable because it is also borrowed as immutable",
    ),
    ("k9_paged_slice_as_timer_context", "cannot borrow `passive` as immutable because it is also borrowed as mutable"),
    ("r1_allocator_above_dispatch", "`NonPagedPool` cannot be allocated, touched or freed with a `ntpool::High` token"),
    ("r1_fast_mutex_acquired_at_dispatch", "`ntpool::Dispatch` does not prove an IRQL below DISPATCH_LEVEL"),
    (
        "r1_non_paged_alloc_above_dispatch",
        "`NonPagedPool` cannot be allocated, touched or freed with a `ntpool::High` token",
    ),
    ("r1_paged_allocator_cannot_be_made", "doesn't satisfy `ntpool::PagedPool: NonPagedPoolType`"),
    ("r1_alloc_quota_with_dispatch_token", "required for `Quota` to implement `Charge<ntpool::Dispatch>`"),
    ("r1_quota_alloc_with_dispatch_token", "`ntpool::Dispatch` does not prove an IRQL below DISPATCH_LEVEL"),
    (
        "r1_paged_alloc_with_dispatch_token",
        "`PagedPool` is paged memory, which must not be touched, allocated or freed at DISPATCH_LEVEL",
    ),
    (
        "r2_paged_arc_passed_into_dispatch_region",
        "required for `PoolArc<u32, Tg, PagedPool>` to implement `DispatchSafe`",
    ),
    (
        "r2_paged_vec_used_in_dispatch_region",
        "`ntpool::Paged<ntpool::allocator_api2::vec::Vec<u32, PoolAllocator<Tg, PagedPool>>>` may own or reach paged memory, so it cannot enter code that runs at DISPATCH_LEVEL",
    ),
    ("r2_callback_at_dispatch_level", "required for `PoolBox<u32, Tg, PagedPool>` to implement `DispatchSafe`"),
    (
        "r2_capturing_closure_in_region",
        "closures can only be coerced to `fn` types if they do not capture any variables",
    ),
    ("r2_explicit_drop_in_dispatch_region", "required for `PoolBox<u32, Tg, PagedPool>` to implement `DispatchSafe`"),
    ("r2_implicit_drop_at_end_of_region", "required for `PoolBox<u32, Tg, PagedPool>` to implement `DispatchSafe`"),
    (
        "r2_derived_owner_of_a_paged_box_through_a_pointer",
        "required for `Owned<PoolBox<u32, Tg, PagedPool>>` to implement `ntpool::DispatchSafe`",
    ),
    (
        "r2_ex_pool_buffer_of_unknown_pool_freed_at_dispatch",
        "required for `PoolBox<u32, ExFreePoolOwner, SystemPool<ntpool::UnknownPool>>` to implement `DispatchSafe`",
    ),
    (
        "r2_mem_replace_through_mut_ref",
        "required for `(&mut PoolBox<u32, Tg, PagedPool>, PoolBox<u32, Tg, PagedPool>)` to implement `DispatchSafe`",
    ),
    (
        "r2_mem_swap_through_mut_ref",
        "required for `(&mut Option<PoolBox<u32, Tg, PagedPool>>, &mut Option<PoolBox<u32, Tg, PagedPool>>)` to implement `DispatchSafe`",
    ),
    (
        "r2_option_of_paged_box_in_region",
        "required for `Option<PoolBox<u32, Tg, PagedPool>>` to implement `DispatchSafe`",
    ),
    (
        "r2_option_take_through_mut_ref",
        "required for `&mut Option<PoolBox<u32, Tg, PagedPool>>` to implement `DispatchSafe`",
    ),
    (
        "r2_paged_lookaside_entry_dropped_at_dispatch",
        "required for `PoolBox<u32, &ntpool::LookasideList<u32, Tg, ntpool::PagedPool>, ntpool::PagedPool>` to implement `DispatchSafe`",
    ),
    (
        "r2_paged_box_passed_into_spin_lock_region",
        "required for `PoolBox<u32, Tg, PagedPool>` to implement `DispatchSafe`",
    ),
    (
        "r2_ref_cell_reached_through_shared_ref",
        "may own or reach paged memory, so it cannot enter code that runs at DISPATCH_LEVEL",
    ),
    (
        "r2_spin_lock_protecting_paged_box",
        "required for `Option<PoolBox<u32, Tg, PagedPool>>` to implement `DispatchSafe`",
    ),
    ("r2_struct_field_paged_box", "required for `PoolBox<[u8], Tg, PagedPool>` to implement `ntpool::DispatchSafe`"),
    (
        "r2_tuple_with_paged_box_in_region",
        "required for `(u32, PoolBox<u32, Tg, PagedPool>)` to implement `DispatchSafe`",
    ),
    (
        "r2_vec_of_paged_boxes_in_region",
        "required for `ntpool::allocator_api2::vec::Vec<PoolBox<u32, Tg, PagedPool>, ntpool::PoolAllocator<Tg>>` to implement `DispatchSafe`",
    ),
    ("r3_paged_box_does_not_deref", "type `PoolBox<u32, Tg, PagedPool>` cannot be dereferenced"),
    ("r3_paged_arc_does_not_deref", "type `PoolArc<u32, Tg, PagedPool>` cannot be dereferenced"),
    (
        "r3_paged_allocator_cannot_be_copied_out",
        "`ntpool::PoolAllocator<Tg, ntpool::PagedPool>` does not implement `Clone`, so `&ntpool::PoolAllocator<Tg, ntpool::PagedPool>` was cloned instead",
    ),
    (
        "r3_paged_vec_element_held_across_raise",
        "cannot borrow `passive` as mutable because it is also borrowed as immutable",
    ),
    (
        "r3_paged_read_with_dispatch_token",
        "`PagedPool` is paged memory, which must not be touched, allocated or freed at DISPATCH_LEVEL",
    ),
    (
        "r3_paged_reference_held_across_raise",
        "cannot borrow `passive` as mutable because it is also borrowed as immutable",
    ),
    (
        "r3_paged_slice_reference_into_region",
        "cannot borrow `passive` as mutable because it is also borrowed as immutable",
    ),
    (
        "r3_paged_write_held_across_spin_lock",
        "cannot borrow `passive` as mutable because it is also borrowed as immutable",
    ),
    ("r4_any_irql_hands_out_one_token_at_a_time", "cannot borrow `any` as mutable more than once at a time"),
    (
        "r3_spin_lock_inside_paged_memory_cannot_be_acquired",
        "cannot borrow `passive` as mutable because it is also borrowed as immutable",
    ),
    ("r4_dispatch_token_escapes_its_region", "lifetime may not live long enough"),
    ("r4_token_assumed_without_unsafe", "call to unsafe function `ntpool::Dispatch::assume` is unsafe"),
    ("r4_token_cloned", "no method named `clone` found for struct `ntpool::Passive`"),
    ("r4_token_forged_with_struct_literal", "field `_not_send` of struct `ntpool::Dispatch` is private"),
    (
        "r4_token_reached_inside_dispatch_region",
        "closures can only be coerced to `fn` types if they do not capture any variables",
    ),
    ("r4_token_sent_to_another_thread", "cannot be sent between threads safely"),
    (
        "r4_token_used_while_raised_to_apc",
        "cannot borrow `passive` as mutable because it is also borrowed as immutable",
    ),
    ("r5_box_cannot_be_freed_twice", "use of moved value: `b`"),
    // The objects whose routines the kernel calls (DPCs, timers, work items): the same rules.
    ("k1_paged_box_in_dpc_context", "required for `PoolBox<u32, Tg, PagedPool>` to implement `DispatchSafe`"),
    (
        "k1_paged_box_in_timer_context",
        "required for `ntpool::SpinLock<Option<PoolBox<u32, Tg, PagedPool>>>` to implement `DispatchSafe`",
    ),
    (
        "k2_paged_memory_allocated_in_dpc_routine",
        "`PagedPool` is paged memory, which must not be touched, allocated or freed at DISPATCH_LEVEL",
    ),
    ("k2_paged_memory_read_in_timer_routine", "required for `ntpool::Dispatch` to implement `Allows<PagedPool>`"),
    (
        "k3_capturing_closure_as_dpc_routine",
        "closures can only be coerced to `fn` types if they do not capture any variables",
    ),
    ("k4_dpc_token_escapes_its_routine", "cannot move out of `*dispatch` which is behind a mutable reference"),
    (
        "k5_work_item_context_reached_from_dispatch",
        "required for `&ntpool::WorkItem<PoolBox<u32, Tg, PagedPool>, Tg>` to implement `DispatchSafe`",
    ),
    ("k5_work_item_trigger_does_not_reach_the_context", "no method named `context` found for struct `WorkTrigger<'a>`"),
    ("k6_dpc_dropped_in_dispatch_region", "`ntpool::Dpc<(), Tg>` may own or reach paged memory"),
    ("k6_timer_dropped_in_its_own_routine", "required for `Option<ntpool::Timer<(), Tg>>` to implement `DispatchSafe`"),
    ("r5_box_cannot_change_its_pool", "expected `PoolBox<u32, Tg, PagedPool>`, found `PoolBox<u32, Tg>`"),
    ("r5_box_cannot_change_its_tag", "expected `PoolBox<u32, Other>`, found `PoolBox<u32, Tg>`"),
    (
        "r5_kernel_block_of_an_over_aligned_type",
        "into_kernel_block: this type is zero-sized or aligned on more than 16 bytes",
    ),
    ("r5_from_raw_is_unsafe", "call to unsafe function `PoolBox::<T, G, P>::from_raw` is unsafe"),
    ("trap_default_tag", "invalid pool tag: `Wdm ` and `Ddk ` are default tags"),
    ("trap_pool_type_passed_as_pool_flags", "expected `u64`, found `i32`"),
    ("trap_tag_of_the_wrong_length", "expected an array with a size of 4, found one with a size of 2"),
    ("trap_tag_with_a_nul_byte", "invalid pool tag: a byte is not printable ASCII"),
    ("z1_zeroable_derived_for_an_enum", "enums cannot derive Zeroable: all-zero bytes may be no variant"),
    ("z2_zeroed_box_of_a_type_with_a_reference", "doesn't satisfy `Request: Zeroable`"),
    (
        "z3_zeroable_derived_with_a_reference_field",
        "all-zero bytes may not be a valid `&'static str`, so it cannot be made from a zeroed block",
    ),
];

/// The same for the cases under `tests/ui/videoport/fail`.
const VIDEOPORT_REASONS: &[(&str, &str)] = &[(
    "r2_vp_paged_box_dropped_at_dispatch",
    "`VpPagedPool` is paged memory, which must not be touched, allocated or freed at DISPATCH_LEVEL",
)];

#[test]
fn every_compile_fail_case_fails_for_the_reason_it_names() {
    check_reasons("tests/ui/fail", REASONS);
    check_reasons("tests/ui/videoport/fail", VIDEOPORT_REASONS);
}

fn check_reasons(folder: &str, reasons: &[(&str, &str)]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .expect(folder)
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    cases.sort();
    let mut named: Vec<&str> = reasons.iter().map(|(case, _)| *case).collect();
    named.sort_unstable();
    assert_eq!(cases, named, "every case of {folder} has exactly one reason");
    for (case, reason) in reasons {
        let stderr = std::fs::read_to_string(dir.join(format!("{case}.stderr"))).expect("recorded error");
        assert!(stderr.contains(reason), "{case}: the recorded error does not say {reason:?}:\n{stderr}");
    }
}
