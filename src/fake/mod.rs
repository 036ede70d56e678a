//! A faithful in-process stand-in for the EIAM client-secret API, used by tests and `make demo`.
