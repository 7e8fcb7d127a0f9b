"""The State programme "Tous aux Jeux" (../shared/seeds/002): free tickets from a central pool,
through programmes run by operators, to beneficiaries chosen by lottery."""
