"""One error base for the contract; node and coordinator map these to their own messages."""


class ContractError(Exception):
    """Something does not meet the wire contract."""


class SignatureError(ContractError):
    """A signature is missing, malformed or does not verify."""


class PayloadError(ContractError):
    """A payload cannot be decoded as the message its payload type names."""


class PeriodError(ContractError):
    """A period is not written as 2026Q2, 2026-05 or 2026."""


class ProofError(ContractError):
    """A Merkle inclusion or consistency proof does not verify."""


class KeyFileError(ContractError):
    """A key file is missing, unreadable or too widely readable."""
