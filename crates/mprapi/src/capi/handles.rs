//! Handles for C callers: a table index, a generation count and a type tag
//! packed into the pointer-sized value C code holds.
//!
//! A closed handle's slot gets a new generation before it is reused, so a
//! stale handle never reaches the object that took its place; a forged
//! value, a handle of another kind or NULL finds nothing. Lookups hand out
//! `Arc`s, so a thread still waiting on an event another thread closes
//! keeps it alive until its wait ends: never a use after free.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

const INDEX_BITS: u32 = 32;
const GENERATION_BITS: u32 = 24;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;
const KIND_SHIFT: u32 = INDEX_BITS + GENERATION_BITS;

struct Slot<T> {
    generation: u64,
    value: Option<Arc<T>>,
}

struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
}

pub struct HandleTable<T> {
    kind: u64,
    inner: Mutex<Slots<T>>,
}

impl<T> HandleTable<T> {
    /// A table whose handles carry `kind`, so kinds never mix.
    pub const fn new(kind: u8) -> Self {
        HandleTable {
            kind: kind as u64,
            inner: Mutex::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `value` and returns its handle, never NULL.
    pub fn insert(&self, value: T) -> *mut c_void {
        let mut table = self.lock();
        let index = match table.free.pop() {
            Some(index) => index,
            None => {
                table.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                table.slots.len() - 1
            }
        };
        let slot = &mut table.slots[index];
        slot.value = Some(Arc::new(value));
        let raw = (self.kind << KIND_SHIFT) | (slot.generation << INDEX_BITS) | (index as u64 + 1);
        raw as usize as *mut c_void
    }

    /// Where a handle points, if it is one of ours and still open.
    fn locate(&self, table: &Slots<T>, handle: *const c_void) -> Option<usize> {
        let raw = handle as usize as u64;
        let index = (raw & ((1 << INDEX_BITS) - 1)).checked_sub(1)? as usize;
        let generation = (raw >> INDEX_BITS) & GENERATION_MASK;
        let slot = table.slots.get(index)?;
        (raw >> KIND_SHIFT == self.kind && slot.generation == generation && slot.value.is_some())
            .then_some(index)
    }

    pub fn get(&self, handle: *const c_void) -> Option<Arc<T>> {
        let table = self.lock();
        let index = self.locate(&table, handle)?;
        table.slots[index].value.clone()
    }

    /// Closes a handle; what it held goes when its last user lets go.
    pub fn remove(&self, handle: *const c_void) -> Option<Arc<T>> {
        let mut table = self.lock();
        let index = self.locate(&table, handle)?;
        let slot = &mut table.slots[index];
        slot.generation = (slot.generation + 1) & GENERATION_MASK;
        let value = slot.value.take();
        table.free.push(index);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_forged_null_and_foreign_handles_find_nothing() {
        let table = HandleTable::new(1);
        let other: HandleTable<&str> = HandleTable::new(2);
        let a = table.insert("a");
        assert_eq!(table.get(a).as_deref(), Some(&"a"));
        assert!(table.get(std::ptr::null()).is_none());
        assert!(table.get(0xdead_beef as *const c_void).is_none());
        assert!(other.get(a).is_none(), "a handle of another kind");
        assert!(table.remove(a).is_some());
        assert!(table.remove(a).is_none(), "double close");
        let b = table.insert("b");
        assert_ne!(a, b, "the slot is reused under a new generation");
        assert!(table.get(a).is_none(), "the stale handle does not reach b");
        assert_eq!(table.get(b).as_deref(), Some(&"b"));
    }
}
