//! Derive macros for `ntpool`: `#[derive(DispatchSafe)]`, `#[derive(HighSafe)]` and
//! `#[derive(Zeroable)]`.
//!
//! Each derive implements the trait with a bound on the type of every field, so the impl exists
//! exactly when every field implements the trait. A field of a concrete type that does not (a paged
//! box, say) makes the derive fail to compile, with ntpool's explanation of why.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, parse_macro_input, parse_quote};

/// Implements `ntpool::DispatchSafe` for a struct or enum whose every field is `DispatchSafe`.
#[proc_macro_derive(DispatchSafe)]
pub fn derive_dispatch_safe(input: TokenStream) -> TokenStream {
    derive(input, quote!(::ntpool::DispatchSafe))
}

/// Implements `ntpool::HighSafe` for a struct or enum whose every field is `HighSafe`.
#[proc_macro_derive(HighSafe)]
pub fn derive_high_safe(input: TokenStream) -> TokenStream {
    derive(input, quote!(::ntpool::HighSafe))
}

/// Implements `ntpool::Zeroable` for a struct whose every field is `Zeroable`. Enums are refused:
/// all-zero bytes may be no variant.
#[proc_macro_derive(Zeroable)]
pub fn derive_zeroable(input: TokenStream) -> TokenStream {
    let parsed = parse_macro_input!(input as DeriveInput);
    if let Data::Enum(_) = parsed.data {
        let message = "enums cannot derive Zeroable: all-zero bytes may be no variant";
        return syn::Error::new_spanned(&parsed.ident, message).to_compile_error().into();
    }
    derive_parsed(parsed, quote!(::ntpool::Zeroable))
}

fn derive(input: TokenStream, trait_path: proc_macro2::TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive_parsed(input, trait_path)
}

fn derive_parsed(input: DeriveInput, trait_path: proc_macro2::TokenStream) -> TokenStream {
    let field_types: Vec<syn::Type> = match &input.data {
        Data::Struct(data) => data.fields.iter().map(|field| field.ty.clone()).collect(),
        Data::Enum(data) => {
            data.variants.iter().flat_map(|variant| variant.fields.iter().map(|field| field.ty.clone())).collect()
        }
        Data::Union(_) => {
            return syn::Error::new_spanned(
                &input.ident,
                "unions cannot derive this trait: the active field is unknown",
            )
            .to_compile_error()
            .into();
        }
    };
    let name = &input.ident;
    let mut generics = input.generics.clone();
    let where_clause = generics.make_where_clause();
    for ty in &field_types {
        where_clause.predicates.push(parse_quote!(#ty: #trait_path));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        // SAFETY: every field implements the trait (the where clause), so the type owns and reaches
        // only what its fields do.
        unsafe impl #impl_generics #trait_path for #name #ty_generics #where_clause {}
    }
    .into()
}
