"""`salewatch review`: the post-sale review (复盘) from `salewatch.windows` and
`salewatch.alerts`: a self-contained HTML report and PNG charts."""
