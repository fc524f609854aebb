// Prices and totals for the cart. Kept in its own module so the bundle maps to
// several original files.

export const TAX_RATE = 0.2;

export function lineTotal(item) {
  return item.price * item.quantity;
}

export function cartTotal(items) {
  let total = 0;
  for (const item of items) {
    total += lineTotal(item);
  }
  return Math.round(total * (1 + TAX_RATE) * 100) / 100;
}
