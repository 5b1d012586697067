from tests.conftest import findings_of


def test_says_when_the_minority_class_is_what_makes_it_small(audited):
    starved = findings_of(audited(n_train=400, n_val=300, prevalence=0.05), "split.small_validation")
    assert starved and starved[0].evidence["limited_by_minority"]
    plain = findings_of(audited(n_train=400, n_val=300), "split.small_validation")
    assert plain and not plain[0].evidence["limited_by_minority"]
