//! The declared interfaces by the names of their links and trigger
//! devices, and by the index of the link they have now: each kernel link
//! event finds its interfaces at once, where a pass over thousands of
//! declarations, comparing names, cost the router most of its time.

use super::declaration::Declaration;
use std::collections::HashMap;

#[derive(Default)]
pub struct Lookup {
    by_name: HashMap<String, Vec<u32>>,
    by_index: HashMap<u32, Vec<u32>>,
}

impl Lookup {
    /// Interface `handle` declares `declaration`'s link and trigger.
    pub fn declare(&mut self, handle: u32, declaration: &Declaration) {
        for name in names(declaration) {
            let handles = self.by_name.entry(name.to_owned()).or_default();
            if !handles.contains(&handle) {
                handles.push(handle);
            }
        }
    }

    /// Interface `handle` no longer declares `declaration`'s names.
    pub fn forget(&mut self, handle: u32, declaration: &Declaration) {
        for name in names(declaration) {
            drop_from(&mut self.by_name, name, handle);
        }
    }

    /// Interface `handle`'s link went from index `from` to `to`.
    pub fn moved(&mut self, handle: u32, from: Option<u32>, to: Option<u32>) {
        if from == to {
            return;
        }
        if let Some(from) = from {
            drop_from(&mut self.by_index, &from, handle);
        }
        if let Some(to) = to {
            self.by_index.entry(to).or_default().push(handle);
        }
    }

    /// The interfaces declaring a link or trigger named `name`.
    pub fn named(&self, name: &str) -> &[u32] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The interfaces whose link has index `index` now.
    pub fn at_index(&self, index: u32) -> &[u32] {
        self.by_index.get(&index).map_or(&[], Vec::as_slice)
    }
}

fn names(declaration: &Declaration) -> impl Iterator<Item = &str> {
    [
        declaration.link.as_str(),
        declaration.trigger_device.as_str(),
    ]
    .into_iter()
    .filter(|name| !name.is_empty())
}

fn drop_from<K, Q>(map: &mut HashMap<K, Vec<u32>>, key: &Q, handle: u32)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(handles) = map.get_mut(key) {
        handles.retain(|h| *h != handle);
        if handles.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(link: &str, trigger: &str) -> Declaration {
        Declaration {
            link: link.into(),
            trigger_device: trigger.into(),
            ..Declaration::default()
        }
    }

    #[test]
    fn names_and_indexes_follow_declarations_and_links() {
        let mut lookup = Lookup::default();
        let wan = declared("wan0", "ddm-t1");
        lookup.declare(1, &wan);
        lookup.declare(2, &declared("wan0", ""));
        assert_eq!(lookup.named("wan0"), &[1, 2]);
        assert_eq!(lookup.named("ddm-t1"), &[1]);
        assert!(lookup.named("").is_empty());
        lookup.forget(1, &wan);
        assert_eq!(lookup.named("wan0"), &[2]);
        assert!(lookup.named("ddm-t1").is_empty());

        lookup.moved(2, None, Some(7));
        assert_eq!(lookup.at_index(7), &[2]);
        lookup.moved(2, Some(7), Some(8));
        assert!(lookup.at_index(7).is_empty());
        assert_eq!(lookup.at_index(8), &[2]);
        lookup.moved(2, Some(8), None);
        assert!(lookup.at_index(8).is_empty());
    }
}
