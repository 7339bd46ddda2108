from matsight.demos import PARTS, available_parts


def test_every_part_is_a_module_of_the_demos_package():
    assert available_parts() == list(PARTS)
