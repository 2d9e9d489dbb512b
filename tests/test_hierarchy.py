import json

import numpy as np
import pytest

from input_pipeline.hierarchy import HierarchyError, LabelHierarchy

# 0 entity-less roots: 0 'fruit', 1 'food'; 2 'apple' -> fruit; 3 'granny smith' -> apple;
# 4 'pie' -> food; 5 'apple pie' -> pie and apple (two parents).
PAIRS = [(2, 0), (3, 2), (0, 1), (4, 1), (5, 4), (5, 2)]


def brute_force_ancestors(pairs, n):
    """Reference: transitive closure by repeated relaxation."""
    reach = np.eye(n, dtype=bool)
    for _ in range(n):
        for c, p in pairs:
            reach[c] |= reach[p]
    return [np.flatnonzero(r) for r in reach]


def test_fill_ancestors_matches_transitive_closure():
    h = LabelHierarchy.from_pairs(PAIRS, 6)
    for got, want in zip(h.ancestors(), brute_force_ancestors(PAIRS, 6)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(h.fill_ancestors([3]), [1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(h.fill_ancestors([5]), [1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(h.fill_ancestors([]), np.zeros(6))


def test_descendants_invert_ancestors():
    h = LabelHierarchy.from_pairs(PAIRS, 6)
    closure = brute_force_ancestors(PAIRS, 6)
    for c, got in enumerate(h.descendants()):
        np.testing.assert_array_equal(got, [d for d in range(6) if c in closure[d]])


def test_random_dag_matches_transitive_closure():
    rng = np.random.default_rng(0)
    n = 60
    pairs = [(c, int(p)) for c in range(1, n)
             for p in rng.choice(c, size=min(c, rng.integers(1, 3)), replace=False)]
    order = rng.permutation(n)  # relabel so ids are not topologically sorted
    pairs = [(int(order[c]), int(order[p])) for c, p in pairs]
    h = LabelHierarchy.from_pairs(pairs, n)
    for got, want in zip(h.ancestors(), brute_force_ancestors(pairs, n)):
        np.testing.assert_array_equal(got, want)


def test_cycle_is_reported_with_its_path():
    names = ["a", "b", "c", "d"]
    with pytest.raises(HierarchyError, match=r"cycle: .*\(b\).*\(c\).*\(d\).*\(b\)"):
        LabelHierarchy.from_pairs([(0, 1), (1, 2), (2, 3), (3, 1)], 4, names)
    with pytest.raises(HierarchyError, match="its own parent"):
        LabelHierarchy.from_pairs([(1, 1)], 2)


def test_out_of_range_ids_are_rejected():
    with pytest.raises(HierarchyError, match=r"parent id 7 .* out of range \[0, 3\)"):
        LabelHierarchy.from_pairs([(0, 7)], 3)


def test_pairs_file_with_names_and_unknown_parent(tmp_path):
    names = ["fruit", "food", "apple"]
    path = tmp_path / "h.txt"
    path.write_text("# child parent\napple fruit\nfruit food  # trailing comment\n\n")
    h = LabelHierarchy.from_pairs_file(path, class_names=names)
    np.testing.assert_array_equal(h.fill_ancestors([2]), [1, 1, 1])

    path.write_text("apple fruit\nfruit vegetables\n")
    with pytest.raises(HierarchyError, match=r"h.txt:2: unknown class 'vegetables'"):
        LabelHierarchy.from_pairs_file(path, class_names=names)
    path.write_text("2 0 1\n")
    with pytest.raises(HierarchyError, match="expected 'child parent'"):
        LabelHierarchy.from_pairs_file(path, num_classes=3)


def test_open_images_json(tmp_path):
    tree = {"LabelName": "/m/0bl9f", "Subcategory": [
        {"LabelName": "/m/food", "Subcategory": [
            {"LabelName": "/m/fruit", "Subcategory": [{"LabelName": "/m/apple"}]}]},
        {"LabelName": "/m/car", "Part": [{"LabelName": "/m/wheel"}]},
    ]}
    path = tmp_path / "bbox_labels_600_hierarchy.json"
    path.write_text(json.dumps(tree))
    names = ["/m/apple", "/m/fruit", "/m/food", "/m/car", "/m/wheel"]
    h = LabelHierarchy.from_open_images_json(path, names)
    np.testing.assert_array_equal(h.fill_ancestors([0]), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(h.fill_ancestors([4]), [0, 0, 0, 0, 1])  # a part is not a kind
    with pytest.raises(HierarchyError, match="'/m/apple'.*not among the dataset's classes"):
        LabelHierarchy.from_open_images_json(path, names[1:])
