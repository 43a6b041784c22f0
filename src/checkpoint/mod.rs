//! `kubeboot checkpoint`: the pod checkpointer (being built; see state.rs).
