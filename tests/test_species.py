import numpy as np
import pytest

from hicgen.data.species import SPECIES, pdg_charge, pdg_mass, species_class, species_pid


@pytest.mark.parametrize("pid,charge", [(211, 1), (-211, -1), (321, 1), (-321, -1), (2212, 1), (-2212, -1),
                                        (11, -1), (-11, 1), (13, -1), (-13, 1), (3222, 1), (3112, -1),
                                        (3312, -1), (-3334, 1), (310, 0), (111, 0), (2112, 0), (411, 1), (521, 1),
                                        (511, 0), (22, 0), (1000822080, 82)])
def test_charge_from_quark_content(pid, charge):
    assert pdg_charge(np.array([pid]))[0] == charge


def test_species_round_trip():
    pids = np.array([211, -211, 321, -321, 2212, -2212, -11, 11, -13, 13, 3222, -3222, 3312])
    classes = species_class(pids)
    assert [SPECIES[c] for c in classes] == ["pi+", "pi-", "K+", "K-", "p", "pbar", "e+", "e-", "mu+", "mu-",
                                             "other+", "other-", "other-"]
    back = species_pid(classes[:10])
    np.testing.assert_array_equal(back, pids[:10])
    assert species_pid(np.array([10, 11]), other_pid=(3222, 3312)).tolist() == [3222, 3312]


def test_masses_positive_and_charge_conjugate():
    pids = np.array([211, -211, 2212, -2212, 11])
    m = pdg_mass(pids)
    assert m[0] == m[1] and m[2] == m[3] and 0 < m[4] < 0.001
