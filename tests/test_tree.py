"""Tests for diffprog.tree (pytrees on optree, namespace "diffprog", None is a leaf)."""

import collections
import dataclasses
import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffprog
from diffprog import tree

Point = collections.namedtuple("Point", ["x", "y"])

# ---------------------------------------------------------------- helpers


def assert_same_tree(a, b):
    """Same container types, same dict key order, identical leaves."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        if isinstance(a, collections.defaultdict):
            assert a.default_factory is b.default_factory
        for k in a:
            assert_same_tree(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tree(x, y)
    else:
        assert a is b or a == b, (a, b)


leaf_st = st.one_of(st.integers(), st.floats(allow_nan=False), st.none(), st.text(max_size=4))
tree_st = st.recursive(
    leaf_st,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.lists(kids, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=3), kids, max_size=4),
    ),
    max_leaves=25,
)

# ---------------------------------------------------------------- round trips


@settings(max_examples=300, deadline=None)
@given(tree_st)
def test_roundtrip_random_trees(t):
    leaves, treedef = tree.flatten(t)
    assert treedef.num_leaves == len(leaves)
    assert leaves == tree.leaves(t)
    assert tree.structure(t) == treedef
    assert_same_tree(tree.unflatten(treedef, leaves), t)
    assert_same_tree(tree.map(lambda x: x, t), t)
    assert len(tree.leaf_paths(t)) == len(leaves)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=3), st.integers(), max_size=6), st.randoms())
def test_equal_dicts_flatten_alike(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    shuffled = dict(items)
    la, ta = tree.flatten(d)
    lb, tb = tree.flatten(shuffled)
    assert la == lb == [d[k] for k in sorted(d)]
    assert ta == tb
    assert list(tree.unflatten(tb, lb)) == [k for k, _ in items]


def test_roundtrip_every_container_kind_nested():
    @tree.register_dataclass
    @dataclasses.dataclass
    class Layer:
        W: object
        b: object

    dd = collections.defaultdict(list, {"z": [1, None], "a": (2,)})
    t = {
        "od": collections.OrderedDict([("q", Point(3, {"k": 4})), ("p", 5)]),
        "dd": dd,
        "layers": [Layer(W=6, b=None), Layer(W=(7, 8), b=[9])],
        "none": None,
    }
    leaves, treedef = tree.flatten(t)
    assert leaves == [2, 1, None, 6, None, 7, 8, 9, None, 3, 4, 5]
    back = tree.unflatten(treedef, leaves)
    assert_same_tree(back["od"], t["od"])
    assert_same_tree(back["dd"], t["dd"])
    assert type(back["layers"][1]) is Layer
    assert back["layers"][1].W == (7, 8) and back["layers"][1].b == [9]
    assert back["none"] is None


# ---------------------------------------------------------------- containers


def test_dict_sorted_traversal_original_order_restored():
    leaves, treedef = tree.flatten({"b": 1, "a": 2})
    assert leaves == [2, 1]
    back = tree.unflatten(treedef, [20, 10])
    assert list(back) == ["b", "a"]
    assert back == {"a": 20, "b": 10}


def test_defaultdict_keeps_default_factory():
    d = collections.defaultdict(int, {"b": 1, "a": 2})
    leaves, treedef = tree.flatten(d)
    assert leaves == [2, 1]
    back = tree.unflatten(treedef, [5, 6])
    assert type(back) is collections.defaultdict
    assert back.default_factory is int
    assert back["missing"] == 0
    assert list(back.items())[:2] == [("b", 6), ("a", 5)]


def test_ordereddict_keeps_insertion_order():
    od = collections.OrderedDict([("b", 1), ("a", 2)])
    leaves, treedef = tree.flatten(od)
    assert leaves == [1, 2]
    back = tree.unflatten(treedef, ["x", "y"])
    assert type(back) is collections.OrderedDict
    assert list(back.items()) == [("b", "x"), ("a", "y")]


def test_namedtuple_type_kept():
    back = tree.map(lambda v: v * 10, Point(1, (2, 3)))
    assert type(back) is Point
    assert back == Point(10, (20, 30))


def test_none_is_leaf():
    leaves, treedef = tree.flatten([None, {"a": None}, 1])
    assert leaves == [None, None, 1]
    assert treedef.num_leaves == 3
    assert tree.map(lambda v: "seen", [None, (None,)]) == ["seen", ("seen",)]
    assert tree.leaves(None) == [None]


def test_is_leaf_stops_descent():
    t = {"a": [1, 2], "b": (3,)}
    assert tree.leaves(t, is_leaf=lambda x: isinstance(x, list)) == [[1, 2], 3]


# ---------------------------------------------------------------- dataclasses


def test_dataclass_static_field_is_structure():
    @tree.register_dataclass
    @dataclasses.dataclass
    class Dense:
        W: object
        b: object
        act: str = dataclasses.field(default="relu", metadata={"static": True})

    relu, tanh = Dense(1.0, 2.0, "relu"), Dense(1.0, 2.0, "tanh")
    assert tree.leaves(relu) == [1.0, 2.0]
    assert tree.structure(relu) != tree.structure(tanh)
    assert tree.structure(relu) == tree.structure(Dense(5.0, 6.0, "relu"))
    back = tree.unflatten(tree.structure(tanh), [3.0, 4.0])
    assert (back.W, back.b, back.act) == (3.0, 4.0, "tanh")


def test_dataclass_unhashable_static_field_error():
    @tree.register_dataclass
    @dataclasses.dataclass
    class Conv:
        W: object
        shape: list = dataclasses.field(default=None, metadata={"static": True})

    with pytest.raises(TypeError, match=r"Conv\.shape.*\[3, 3\].*must be hashable"):
        tree.flatten(Conv(1.0, [3, 3]))


def test_frozen_dataclass_roundtrip():
    @tree.register_dataclass
    @dataclasses.dataclass(frozen=True)
    class Frozen:
        a: object
        b: object

    out = tree.map(lambda v: v + 1, Frozen(1, [2]))
    assert type(out) is Frozen
    assert out == Frozen(2, [3])
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.a = 0


def test_dataclass_unflatten_skips_init_and_post_init():
    calls = []

    @tree.register_dataclass
    @dataclasses.dataclass
    class Checked:
        x: object

        def __post_init__(self):
            calls.append(self.x)
            if not isinstance(self.x, float):
                raise ValueError("x must be a float")

    obj = Checked(1.0)
    assert calls == [1.0]
    out = tree.map(lambda v: "traced", obj)
    assert type(out) is Checked and out.x == "traced"
    assert calls == [1.0]


def test_register_dataclass_rejects_non_dataclass():
    class Plain:
        pass

    with pytest.raises(TypeError, match="expected a dataclass type"):
        tree.register_dataclass(Plain)

    @dataclasses.dataclass
    class D:
        x: int

    with pytest.raises(TypeError, match="expected a dataclass type"):
        tree.register_dataclass(D(1))  # an instance, not the class


# ---------------------------------------------------------------- custom nodes


def test_register_node_custom_container():
    class Box:
        def __init__(self, items, tag):
            self.items, self.tag = items, tag

    def flat(b):
        return (x for x in b.items), b.tag  # children may be any iterable

    def unflat(tag, children):
        return Box(list(children), tag)

    assert tree.register_node(Box, flat, unflat) is Box
    leaves, treedef = tree.flatten({"box": Box([1, [2, None]], "t")})
    assert leaves == [1, 2, None]
    assert tree.structure(Box([0], "t")) != tree.structure(Box([0], "u"))
    back = tree.unflatten(treedef, [7, 8, 9])["box"]
    assert type(back) is Box and back.tag == "t" and back.items == [7, [8, 9]]
    assert tree.leaf_paths(Box([1, 2], "t")) == ["[<flat index 0>]", "[<flat index 1>]"]


def test_register_twice_is_an_error():
    class Once:
        pass

    tree.register_node(Once, lambda o: ((), None), lambda aux, ch: Once())
    with pytest.raises(ValueError, match="cannot register .*Once.*already registered"):
        tree.register_node(Once, lambda o: ((), None), lambda aux, ch: Once())
    with pytest.raises(ValueError, match="built-in"):
        tree.register_node(dict, lambda o: ((), None), lambda aux, ch: {})
    with pytest.raises(TypeError, match="expected a class"):
        tree.register_node("notatype", lambda o: ((), None), lambda aux, ch: None)


# ---------------------------------------------------------------- paths


def test_keystr_exact_strings():
    @tree.register_dataclass
    @dataclasses.dataclass
    class Lin:
        W: object
        b: object
        name: str = dataclasses.field(default="lin", metadata={"static": True})

    t = {"layers": [Lin(1, 2)], "pt": Point(3, [4]), 0: 5}
    assert tree.leaf_paths(t) == [
        "[0]", "['layers'][0].W", "['layers'][0].b", "['pt'].x", "['pt'].y[0]",
    ]
    pairs, treedef = tree.flatten_with_path(t)
    assert [leaf for _, leaf in pairs] == [5, 1, 2, 3, 4]
    assert [tree.keystr(p) for p, _ in pairs] == tree.leaf_paths(t)
    assert all(isinstance(p, tuple) for p, _ in pairs)
    assert treedef == tree.structure(t)


def test_keystr_nested_dict_list():
    pairs, _ = tree.flatten_with_path({"layers": [{"W": 1, "b": 2}], "x": (None,)})
    assert [(tree.keystr(p), v) for p, v in pairs] == [
        ("['layers'][0]['W']", 1), ("['layers'][0]['b']", 2), ("['x'][0]", None),
    ]
    assert tree.leaf_paths(7) == [""]
    assert tree.keystr(()) == ""


# ---------------------------------------------------------------- map and errors


def test_map_multiple_trees():
    a = {"w": [1, 2], "b": None}
    b = {"w": [10, 20], "b": 5}
    assert tree.map(lambda x, y, z: (x, y, z), a, b, b) == {
        "w": [(1, 10, 10), (2, 20, 20)], "b": (None, 5, 5),
    }


def test_map_structure_mismatch_shows_both():
    with pytest.raises(ValueError) as info:
        tree.map(lambda x, y: x, {"a": 1, "b": 2}, {"a": 1, "c": 2})
    msg = str(info.value)
    assert "tree argument 1" in msg
    assert "{'a': *, 'c': *}" in msg and "{'a': *, 'b': *}" in msg
    # a deeper rest tree is a mismatch too (strict equality, not prefix matching)
    with pytest.raises(ValueError, match="structure"):
        tree.map(lambda x, y: x, [1, 2], [1, (2, 3)])


def test_unflatten_wrong_leaf_count():
    _, treedef = tree.flatten({"a": 1, "b": [2, 3]})
    with pytest.raises(ValueError, match="expects 3 leaves, got 2"):
        tree.unflatten(treedef, [1, 2])
    with pytest.raises(ValueError, match="expects 3 leaves, got 4"):
        tree.unflatten(treedef, [1, 2, 3, 4])
    with pytest.raises(TypeError, match="arguments swapped"):
        tree.unflatten([1, 2, 3], treedef)


def test_unflatten_accepts_iterator():
    _, treedef = tree.flatten((1, [2]))
    assert tree.unflatten(treedef, iter([5, 6])) == (5, [6])


def test_docstring_examples_run():
    result = doctest.testmod(tree, extraglobs={"dp": diffprog})
    assert result.attempted >= 10
    assert result.failed == 0
