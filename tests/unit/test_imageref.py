"""Image references as the inventory, containerd and the kubelet spell them: registry/repository:tag, no digests."""

from __future__ import annotations

import pytest

from kbuild.imageref import ImageRef


@pytest.mark.parametrize("text, registry, repository, tag", [
    ("registry.k8s.io/pause:3.10.2", "registry.k8s.io", "pause", "3.10.2"),
    ("registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io", "coredns/coredns", "v1.14.6"),
    ("localhost:5000/a.b/c_d-e:Latest_1", "localhost:5000", "a.b/c_d-e", "Latest_1"),
])
def test_a_reference_splits_into_registry_repository_and_tag(text, registry, repository, tag):
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert str(ref) == text


@pytest.mark.parametrize("text", [
    "pause:3.10.2",  # no registry: containerd would guess docker.io, kbuild does not
    "registry.k8s.io/pause",  # no tag
    "registry.k8s.io/pause@sha256:" + "a" * 64,  # a digest
    "registry.k8s.io/Pause:1",  # repositories are lowercase
    "registry.k8s.io/pause:-1",  # a tag cannot start with '-'
    "registry.k8s.io/pause:" + "a" * 129,  # at most 128 characters
])
def test_anything_else_is_refused_with_an_example(text):
    with pytest.raises(ValueError, match=r"is not an image reference like registry\.k8s\.io/pause:3\.10\.2"):
        ImageRef.parse(text)


def test_a_reference_with_a_trailing_newline_is_refused():
    with pytest.raises(ValueError, match="is not an image reference"):
        ImageRef.parse("registry.k8s.io/pause:1\n")
