"""The shop: live inventory, holds, pack and quota rules, windows enforced."""
