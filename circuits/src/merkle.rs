//! Poseidon Merkle trees for set membership and non-membership, natively
//! (for issuers, servers, tests and benches) and in the circuit.
//!
//! # Trees
//! Binary, fixed depth [`DEPTH`] = 20 (up to 1,048,576 leaves), nodes
//! `Poseidon2(left, right)` with circomlib's parameters. Absent leaves hold
//! [`empty_leaf`], a domain-separated constant nobody can hit with a slot
//! value (it is a Poseidon output on a domain no slot uses); absent
//! subtrees hash to the matching empty root, so a tree costs work in the
//! number of real leaves, not in `2^DEPTH`. The depth is fixed, so a proof
//! cannot present an inner node as a leaf.
//!
//! Depth 20 because a path costs 242 constraints a level (a Poseidon2 and
//! the one-constraint swap plus its booleanity) and both set circuits stay
//! within a 2^13 QAP domain at depth 20 (see the pinned shapes); fraud
//! lists of a million entries fit.
//!
//! # Membership
//! Leaves are the members' encoded values themselves ([`MembershipSet`]):
//! the proof shows a path from the private slot value to the public root.
//! The leaf index stays private.
//!
//! # Non-membership: sorted leaves with committed adjacency
//! [`NonMembershipSet`] sorts the members (by `(v - origin) mod p`, see
//! below) between sentinels and stores the pair of every two neighbours as
//! one leaf, `Poseidon2(low, high)`. To show `x` is absent the prover
//! opens one leaf and shows `low < x < high`. This is the sorted-leaf
//! adjacency construction with the adjacency committed by the tree's
//! builder inside the leaf instead of proven by leaf indices, which halves
//! the Merkle paths (one instead of two). It is sound because the builder
//! (the verifier's side, which owns the list) only ever pairs neighbours.
//!
//! The order comparisons are on full field elements (text slots hash to
//! uniform values), so they are done on differences: `d1 = x - low - 1` and
//! `d2 = high - x - 1`, each range-checked to [`GAP_BITS`] = 252 bits. With
//! `L`, `H`, `X` the canonical integers of `low`, `high`, `x` (shifted by
//! the origin, which cancels in the differences), the builder guarantees
//! `L < H`. Then `d1 + d2 = H - L - 2 (mod p)`; as integers `d1 + d2 <
//! 2^253 < p - 2`, and `H - L - 2 + p > 2^253`, so `d1 + d2 = H - L - 2`
//! exactly, `L + 1 + d1 <= H - 1 < p` is the canonical integer of `X`, and
//! `L < X < H`. 253 bits would not do: `2^254 > p` would let the sum wrap.
//! Completeness needs every gap below `2^252`: the builder places sentinels
//! at every multiple of `2^252` (there are three below p) and at `p - 1`.
//! The sort starts at a random-looking origin rather than at zero so that
//! no realistic value (0, the date 1970-01-01, -1) is a sentinel, which
//! could not be proven absent.

use std::{collections::HashMap, sync::OnceLock};

use ark_bn254::Fr;
use ark_ff::{BigInteger256, PrimeField};
use ark_r1cs_std::{alloc::AllocVar, boolean::Boolean, eq::EqGadget, fields::fp::FpVar};
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};

use crate::{
    credential::{hash_fixed, text::text_to_field},
    named,
    poseidon::gadget::hash_var,
};

/// Depth of every zkid Merkle tree.
pub const DEPTH: usize = 20;

/// Width of the non-membership gap checks (see the module docs).
pub const GAP_BITS: usize = 252;

/// Errors of the native tree builders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// More leaves than `2^DEPTH`.
    #[error("{0} leaves do not fit a depth-{DEPTH} tree")]
    TooManyLeaves(usize),
    /// A leaf index past the last leaf.
    #[error("no leaf at index {0}")]
    NoSuchLeaf(usize),
    /// The value is not in the membership set.
    #[error("value is not a member of the set")]
    NotAMember,
    /// The value is in the set, so its absence cannot be proven.
    #[error("value is a member of the set")]
    Member,
    /// A reserved constant (the empty leaf or a sentinel) cannot be a
    /// member.
    #[error("value is reserved by the tree construction")]
    ReservedValue,
}

fn domain_constant(name: &str) -> Fr {
    // Constant inputs, far below the encoding's length limits.
    text_to_field("zkid.merkle", name).unwrap_or_else(|_| unreachable!("constant input"))
}

/// The value of an absent leaf.
pub fn empty_leaf() -> Fr {
    static EMPTY: OnceLock<Fr> = OnceLock::new();
    *EMPTY.get_or_init(|| domain_constant("empty leaf"))
}

/// `empty_roots()[l]`: the root of an empty subtree of height `l`.
fn empty_roots() -> &'static [Fr] {
    static ROOTS: OnceLock<Vec<Fr>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = vec![empty_leaf()];
        for level in 0..DEPTH {
            let below = roots[level];
            roots.push(hash_fixed(&[below, below]));
        }
        roots
    })
}

/// A fixed-depth Poseidon Merkle tree over the given leaves.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// `levels[0]` holds the leaves, `levels[l]` the nodes of height `l`
    /// that have at least one real leaf below them.
    levels: Vec<Vec<Fr>>,
}

/// An authentication path: the leaf's index and its siblings, leaf level
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerklePath {
    /// Position of the leaf; bit `l` says whether the node at height `l`
    /// is a right child.
    pub index: u64,
    /// The [`DEPTH`] siblings, from the leaf's up.
    pub siblings: Vec<Fr>,
}

impl MerklePath {
    /// The root this path leads to from `leaf`: the native counterpart of
    /// [`root_var`].
    pub fn root(&self, leaf: Fr) -> Fr {
        self.siblings
            .iter()
            .enumerate()
            .fold(leaf, |node, (level, sibling)| {
                if (self.index >> level) & 1 == 1 {
                    hash_fixed(&[*sibling, node])
                } else {
                    hash_fixed(&[node, *sibling])
                }
            })
    }
}

impl MerkleTree {
    /// Builds the tree.
    ///
    /// # Errors
    /// [`MerkleError::TooManyLeaves`] beyond `2^DEPTH` leaves.
    pub fn new(leaves: Vec<Fr>) -> Result<Self, MerkleError> {
        if leaves.len() > 1 << DEPTH {
            return Err(MerkleError::TooManyLeaves(leaves.len()));
        }
        let empty = empty_roots();
        let mut levels = vec![leaves];
        for height in 0..DEPTH {
            let below = &levels[height];
            let above = below
                .chunks(2)
                .map(|pair| hash_fixed(&[pair[0], pair.get(1).copied().unwrap_or(empty[height])]))
                .collect();
            levels.push(above);
        }
        Ok(Self { levels })
    }

    /// Number of real leaves.
    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    /// Whether the tree has no real leaf.
    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// The root.
    pub fn root(&self) -> Fr {
        self.levels[DEPTH]
            .first()
            .copied()
            .unwrap_or(empty_roots()[DEPTH])
    }

    /// The path of the leaf at `index`.
    ///
    /// # Errors
    /// [`MerkleError::NoSuchLeaf`] past the last leaf.
    pub fn path(&self, index: usize) -> Result<MerklePath, MerkleError> {
        if index >= self.len() {
            return Err(MerkleError::NoSuchLeaf(index));
        }
        let empty = empty_roots();
        let siblings = (0..DEPTH)
            .map(|height| {
                let position = (index >> height) ^ 1;
                self.levels[height]
                    .get(position)
                    .copied()
                    .unwrap_or(empty[height])
            })
            .collect();
        Ok(MerklePath {
            index: index as u64,
            siblings,
        })
    }
}

/// A set of encoded values with membership paths.
#[derive(Debug, Clone)]
pub struct MembershipSet {
    tree: MerkleTree,
    positions: HashMap<Fr, usize>,
}

impl MembershipSet {
    /// Builds the set; duplicates are kept once.
    ///
    /// # Errors
    /// [`MerkleError::TooManyLeaves`], or [`MerkleError::ReservedValue`] for
    /// the empty-leaf constant.
    pub fn new(values: &[Fr]) -> Result<Self, MerkleError> {
        let mut positions = HashMap::with_capacity(values.len());
        let mut leaves = Vec::with_capacity(values.len());
        for value in values {
            if *value == empty_leaf() {
                return Err(MerkleError::ReservedValue);
            }
            if !positions.contains_key(value) {
                positions.insert(*value, leaves.len());
                leaves.push(*value);
            }
        }
        Ok(Self {
            tree: MerkleTree::new(leaves)?,
            positions,
        })
    }

    /// The public root.
    pub fn root(&self) -> Fr {
        self.tree.root()
    }

    /// The path proving `value` is a member.
    ///
    /// # Errors
    /// [`MerkleError::NotAMember`].
    pub fn witness(&self, value: &Fr) -> Result<MerklePath, MerkleError> {
        let index = self.positions.get(value).ok_or(MerkleError::NotAMember)?;
        self.tree.path(*index)
    }
}

/// The opening that proves a value absent from a [`NonMembershipSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonMembershipWitness {
    /// The neighbour below the value.
    pub low: Fr,
    /// The neighbour above the value.
    pub high: Fr,
    /// Path of the leaf `Poseidon2(low, high)`.
    pub path: MerklePath,
}

/// A set of encoded values, sorted between sentinels, whose tree proves
/// absence (module docs).
#[derive(Debug, Clone)]
pub struct NonMembershipSet {
    /// Members and sentinels, sorted by their shifted integer.
    sorted: Vec<Fr>,
    tree: MerkleTree,
}

/// The sort origin: values are ordered by `(v - origin) mod p`.
fn origin() -> Fr {
    static ORIGIN: OnceLock<Fr> = OnceLock::new();
    *ORIGIN.get_or_init(|| domain_constant("non-membership origin"))
}

fn sort_key(value: &Fr) -> BigInteger256 {
    (*value - origin()).into_bigint()
}

/// The sentinels, in shifted coordinates: every multiple of 2^GAP_BITS
/// below p - 1, and p - 1.
fn sentinels() -> Vec<Fr> {
    let step = {
        let bits = BigInteger256::from(1u64) << (GAP_BITS as u32);
        Fr::from_bigint(bits).unwrap_or_else(|| unreachable!("2^252 < p"))
    };
    let last = -Fr::from(1u8);
    let mut shifted = vec![Fr::from(0u8)];
    let mut previous = Fr::from(0u8);
    let mut next = step;
    // Stop when adding the step wraps around p (the multiple would not be
    // below p), or lands on p - 1 itself.
    while next.into_bigint() > previous.into_bigint() && next != last {
        shifted.push(next);
        previous = next;
        next += step;
    }
    shifted.push(last);
    shifted.into_iter().map(|s| s + origin()).collect()
}

impl NonMembershipSet {
    /// Builds the set; duplicates are kept once.
    ///
    /// # Errors
    /// [`MerkleError::TooManyLeaves`], or [`MerkleError::ReservedValue`]
    /// for a sentinel (which no realistic value is: they sit at
    /// random-looking points).
    pub fn new(values: &[Fr]) -> Result<Self, MerkleError> {
        let sentinels = sentinels();
        if values.iter().any(|v| sentinels.contains(v)) {
            return Err(MerkleError::ReservedValue);
        }
        let mut sorted: Vec<Fr> = values.iter().chain(&sentinels).copied().collect();
        sorted.sort_by_key(sort_key);
        sorted.dedup();
        let leaves = sorted
            .windows(2)
            .map(|pair| hash_fixed(&[pair[0], pair[1]]))
            .collect();
        Ok(Self {
            tree: MerkleTree::new(leaves)?,
            sorted,
        })
    }

    /// The public root.
    pub fn root(&self) -> Fr {
        self.tree.root()
    }

    /// The neighbours and path proving `value` absent.
    ///
    /// # Errors
    /// [`MerkleError::Member`] if `value` is in the set (or a sentinel).
    pub fn witness(&self, value: &Fr) -> Result<NonMembershipWitness, MerkleError> {
        let key = sort_key(value);
        // Index of the first element above `value`; the sentinels at both
        // ends of the shifted range make it at least 1 for any non-member.
        let above = match self.sorted.binary_search_by_key(&key, sort_key) {
            Ok(_) => return Err(MerkleError::Member),
            Err(index) => index,
        };
        let low_index = above.checked_sub(1).ok_or(MerkleError::Member)?;
        let (low, high) = match (self.sorted.get(low_index), self.sorted.get(above)) {
            (Some(low), Some(high)) => (*low, *high),
            _ => return Err(MerkleError::Member),
        };
        Ok(NonMembershipWitness {
            low,
            high,
            path: self.tree.path(low_index)?,
        })
    }

    /// Whether `value` is a member (sentinels excluded).
    pub fn contains(&self, value: &Fr) -> bool {
        self.sorted
            .binary_search_by_key(&sort_key(value), sort_key)
            .is_ok()
            && !sentinels().contains(value)
    }
}

/// A path in the circuit: private index bits and siblings.
pub struct MerklePathVar {
    bits: Vec<Boolean<Fr>>,
    siblings: Vec<FpVar<Fr>>,
}

impl MerklePathVar {
    /// Allocates a path as private witnesses (`None` at key generation).
    ///
    /// # Errors
    /// Whatever the constraint system reports.
    pub fn new_witness(
        cs: &ConstraintSystemRef<Fr>,
        path: Option<&MerklePath>,
    ) -> Result<Self, SynthesisError> {
        let bits = (0..DEPTH)
            .map(|level| {
                Boolean::new_witness(cs.clone(), || {
                    path.map(|p| (p.index >> level) & 1 == 1)
                        .ok_or(SynthesisError::AssignmentMissing)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let siblings = (0..DEPTH)
            .map(|level| {
                FpVar::new_witness(cs.clone(), || {
                    path.and_then(|p| p.siblings.get(level).copied())
                        .ok_or(SynthesisError::AssignmentMissing)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { bits, siblings })
    }
}

/// The root reached from `leaf` along `path`: 241 constraints a level (one
/// for the swap, 240 for Poseidon2), plus the bits' booleanity.
///
/// # Errors
/// Whatever the constraint system reports.
pub fn root_var(leaf: &FpVar<Fr>, path: &MerklePathVar) -> Result<FpVar<Fr>, SynthesisError> {
    let mut node = leaf.clone();
    for (bit, sibling) in path.bits.iter().zip(&path.siblings) {
        // left = bit ? sibling : node, in one product; right is the other.
        let left = &node + FpVar::from(bit.clone()) * (sibling - &node);
        let right = &node + sibling - &left;
        node = hash_var(&[left, right])?;
    }
    Ok(node)
}

/// Enforces that `value` is a leaf of the tree with root `root`.
///
/// # Errors
/// Whatever the constraint system reports.
pub fn enforce_membership(
    cs: &ConstraintSystemRef<Fr>,
    value: &FpVar<Fr>,
    root: &FpVar<Fr>,
    path: Option<&MerklePath>,
) -> Result<(), SynthesisError> {
    let path = named!("membership path", MerklePathVar::new_witness(cs, path))?;
    let reached = named!("membership path hashing", root_var(value, &path))?;
    named!("membership root matches", reached.enforce_equal(root))
}

/// Enforces that `value` lies strictly between the two neighbours of a
/// leaf of the non-membership tree with root `root` (module docs).
///
/// # Errors
/// Whatever the constraint system reports.
pub fn enforce_non_membership(
    cs: &ConstraintSystemRef<Fr>,
    value: &FpVar<Fr>,
    root: &FpVar<Fr>,
    witness: Option<&NonMembershipWitness>,
) -> Result<(), SynthesisError> {
    let (low, high) = named!("neighbours", {
        let low = FpVar::new_witness(cs.clone(), || {
            witness
                .map(|w| w.low)
                .ok_or(SynthesisError::AssignmentMissing)
        })?;
        let high = FpVar::new_witness(cs.clone(), || {
            witness
                .map(|w| w.high)
                .ok_or(SynthesisError::AssignmentMissing)
        })?;
        Ok::<_, SynthesisError>((low, high))
    })?;
    let path = named!(
        "non-membership path",
        MerklePathVar::new_witness(cs, witness.map(|w| &w.path))
    )?;
    let leaf = named!("neighbour leaf", hash_var(&[low.clone(), high.clone()]))?;
    let reached = named!("non-membership path hashing", root_var(&leaf, &path))?;
    named!("non-membership root matches", reached.enforce_equal(root))?;
    let one = FpVar::Constant(Fr::from(1u8));
    // 252 bits, not 253: see the module docs.
    named!(
        "above low neighbour",
        (value - &low - &one)
            .to_bits_le_with_top_bits_zero(GAP_BITS)
            .map(|_| ())
    )?;
    named!(
        "below high neighbour",
        (&high - value - &one)
            .to_bits_le_with_top_bits_zero(GAP_BITS)
            .map(|_| ())
    )?;
    Ok(())
}

/// Whether the canonical integer of `value` has at most `bits` bits.
#[cfg(test)]
fn fits(value: &Fr, bits: usize) -> bool {
    use ark_ff::BigInteger;
    value.into_bigint().num_bits() as usize <= bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::trace_constraints;
    use ark_ff::{AdditiveGroup, Field};
    use ark_relations::gr1cs::{ConstraintSystem, OptimizationGoal};
    use proptest::prelude::*;

    fn values(range: std::ops::Range<u64>) -> Vec<Fr> {
        range.map(Fr::from).collect()
    }

    fn membership_cs(value: Fr, root: Fr, path: &MerklePath) -> Option<String> {
        trace_constraints();
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        let v = FpVar::new_witness(cs.clone(), || Ok(value)).expect("alloc");
        let r = FpVar::new_input(cs.clone(), || Ok(root)).expect("alloc");
        enforce_membership(&cs, &v, &r, Some(path)).expect("synthesis");
        cs.finalize();
        cs.which_is_unsatisfied().expect("prove mode")
    }

    fn non_membership_cs(value: Fr, root: Fr, witness: &NonMembershipWitness) -> Option<String> {
        trace_constraints();
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        let v = FpVar::new_witness(cs.clone(), || Ok(value)).expect("alloc");
        let r = FpVar::new_input(cs.clone(), || Ok(root)).expect("alloc");
        enforce_non_membership(&cs, &v, &r, Some(witness)).expect("synthesis");
        cs.finalize();
        cs.which_is_unsatisfied().expect("prove mode")
    }

    #[test]
    fn paths_lead_to_the_root_natively() {
        let tree = MerkleTree::new(values(0..13)).expect("fits");
        for i in 0..13 {
            let path = tree.path(i).expect("leaf");
            assert_eq!(path.siblings.len(), DEPTH);
            assert_eq!(path.root(Fr::from(i as u64)), tree.root());
            assert_ne!(path.root(Fr::from(i as u64 + 1)), tree.root());
        }
        assert_eq!(tree.path(13), Err(MerkleError::NoSuchLeaf(13)));
        let empty = MerkleTree::new(Vec::new()).expect("fits");
        assert_eq!(empty.root(), empty_roots()[DEPTH]);
        assert!(empty.is_empty());
    }

    #[test]
    fn membership_gadget_agrees_and_names_failures() {
        let set = MembershipSet::new(&values(100..110)).expect("fits");
        let member = Fr::from(104u64);
        let path = set.witness(&member).expect("member");
        assert_eq!(membership_cs(member, set.root(), &path), None);
        assert_eq!(set.witness(&Fr::from(99u64)), Err(MerkleError::NotAMember));
        // A non-member with a member's path.
        let name = membership_cs(Fr::from(99u64), set.root(), &path).expect("fails");
        assert!(name.contains("membership root matches"), "{name}");
        // A member with a tampered path (wrong index, wrong sibling).
        let mut wrong_index = path.clone();
        wrong_index.index ^= 1;
        assert!(membership_cs(member, set.root(), &wrong_index).is_some());
        let mut wrong_sibling = path;
        wrong_sibling.siblings[3] += Fr::ONE;
        let name = membership_cs(member, set.root(), &wrong_sibling).expect("fails");
        assert!(name.contains("membership root matches"), "{name}");
    }

    #[test]
    fn the_empty_leaf_is_reserved() {
        // An absent position really does open to the empty-leaf constant:
        // that is why the constant must never be a slot value. The builder
        // refuses it, and no slot encoding produces it (its domain differs).
        let tree = MerkleTree::new(values(1..4)).expect("fits");
        let mut empty_position = tree.path(2).expect("leaf");
        empty_position.index = 3;
        empty_position.siblings[0] = Fr::from(3u64);
        assert_eq!(empty_position.root(empty_leaf()), tree.root());
        assert_eq!(
            MembershipSet::new(&[empty_leaf()]).err(),
            Some(MerkleError::ReservedValue)
        );
        for slot in crate::credential::Slot::ALL {
            if let Ok(encoded) = slot.encode_text("empty leaf") {
                assert_ne!(encoded, empty_leaf());
            }
        }
    }

    #[test]
    fn non_membership_between_neighbours() {
        let members: Vec<Fr> = [5u64, 9, 1000, 77].into_iter().map(Fr::from).collect();
        let set = NonMembershipSet::new(&members).expect("fits");
        for absent in [0u64, 6, 8, 10, 999, 1001, 1 << 40] {
            let x = Fr::from(absent);
            let witness = set.witness(&x).expect("absent");
            assert!(fits(&(x - witness.low - Fr::ONE), GAP_BITS));
            assert_eq!(non_membership_cs(x, set.root(), &witness), None, "{absent}");
        }
        for absent in [
            -Fr::ONE,
            -Fr::from(5u64),
            Fr::from(Fr::MODULUS_MINUS_ONE_DIV_TWO),
        ] {
            let witness = set.witness(&absent).expect("absent");
            assert_eq!(non_membership_cs(absent, set.root(), &witness), None);
        }
        for member in &members {
            assert_eq!(set.witness(member), Err(MerkleError::Member));
            assert!(set.contains(member));
        }
    }

    #[test]
    fn a_member_cannot_borrow_a_neighbouring_gap() {
        let members: Vec<Fr> = [5u64, 9, 1000].into_iter().map(Fr::from).collect();
        let set = NonMembershipSet::new(&members).expect("fits");
        let nine = Fr::from(9u64);
        // The gaps around 9 are (5, 9) and (9, 1000): 9 is an endpoint.
        let below = set.witness(&Fr::from(8u64)).expect("absent");
        let name = non_membership_cs(nine, set.root(), &below).expect("fails");
        assert!(name.contains("below high neighbour"), "{name}");
        let above = set.witness(&Fr::from(10u64)).expect("absent");
        let name = non_membership_cs(nine, set.root(), &above).expect("fails");
        assert!(name.contains("above low neighbour"), "{name}");
        // Made-up neighbours around 9 are not a leaf of the tree.
        let forged = NonMembershipWitness {
            low: Fr::from(8u64),
            high: Fr::from(10u64),
            path: below.path.clone(),
        };
        let name = non_membership_cs(nine, set.root(), &forged).expect("fails");
        assert!(name.contains("non-membership root matches"), "{name}");
        // A wrong path to a genuine leaf.
        let mut wrong = set.witness(&Fr::from(500u64)).expect("absent");
        wrong.path.siblings[0] += Fr::ONE;
        let name = non_membership_cs(Fr::from(500u64), set.root(), &wrong).expect("fails");
        assert!(name.contains("non-membership root matches"), "{name}");
    }

    #[test]
    fn the_gap_checks_do_not_wrap_around_the_modulus() {
        // A genuine leaf (low, high) and a value far outside it: the
        // differences wrap to huge field elements and fail the checks.
        let set = NonMembershipSet::new(&values(10..20)).expect("fits");
        let witness = set.witness(&Fr::from(5u64)).expect("absent");
        let outside_values = [
            Fr::from(15u64),
            Fr::from(25u64),
            witness.low - Fr::ONE,
            witness.low,
            witness.high,
        ];
        for outside in outside_values {
            assert!(non_membership_cs(outside, set.root(), &witness).is_some());
        }
    }

    #[test]
    fn sentinels_cover_the_field_in_small_gaps() {
        let shifted: Vec<Fr> = sentinels().iter().map(|s| *s - origin()).collect();
        assert_eq!(shifted.first(), Some(&Fr::ZERO));
        assert_eq!(shifted.last(), Some(&-Fr::ONE));
        assert_eq!(shifted.len(), 5, "0, three multiples of 2^252, p - 1");
        for pair in shifted.windows(2) {
            assert!(pair[0].into_bigint() < pair[1].into_bigint());
            // Gaps of at most 2^252: then d1, d2 <= gap - 2 < 2^252.
            assert!(fits(&(pair[1] - pair[0] - Fr::ONE), GAP_BITS));
        }
        assert_eq!(
            NonMembershipSet::new(&[sentinels()[2]]).err(),
            Some(MerkleError::ReservedValue)
        );
    }

    #[test]
    fn path_costs_241_constraints_a_level() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        let v = FpVar::new_witness(cs.clone(), || Ok(Fr::ONE)).expect("alloc");
        let zero_path = MerklePath {
            index: 0,
            siblings: vec![Fr::ZERO; DEPTH],
        };
        let path = MerklePathVar::new_witness(&cs, Some(&zero_path)).expect("alloc");
        let booleanity = cs.num_constraints();
        let _root = root_var(&v, &path).expect("synthesis");
        cs.finalize();
        assert_eq!(booleanity, DEPTH);
        assert_eq!(cs.num_constraints() - booleanity, 241 * DEPTH);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn native_and_circuit_membership_agree(
            members in proptest::collection::vec(0u64..64, 1..12), probe in 0u64..64,
        ) {
            let members: Vec<Fr> = members.into_iter().map(Fr::from).collect();
            let probe = Fr::from(probe);
            let set = MembershipSet::new(&members).expect("fits");
            let absent_set = NonMembershipSet::new(&members).expect("fits");
            let is_member = members.contains(&probe);
            prop_assert_eq!(set.witness(&probe).is_ok(), is_member);
            prop_assert_eq!(absent_set.contains(&probe), is_member);
            match absent_set.witness(&probe) {
                Ok(w) => {
                    prop_assert!(!is_member);
                    prop_assert_eq!(non_membership_cs(probe, absent_set.root(), &w), None);
                }
                Err(_) => prop_assert!(is_member),
            }
            if let Ok(path) = set.witness(&probe) {
                prop_assert_eq!(membership_cs(probe, set.root(), &path), None);
            }
        }
    }
}
