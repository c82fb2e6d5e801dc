"""Root conftest: prints the figures tests recorded with tests.conftest.report()."""


def pytest_terminal_summary(terminalreporter):
    from tests.conftest import FIGURES

    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
