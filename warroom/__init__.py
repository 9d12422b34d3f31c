"""What people look at: `salewatch top`, the live war room in a terminal, built from what a
worker serves, and `salewatch review`, the post-sale report built from the output topics."""
