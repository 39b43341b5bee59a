// The logging sample app: the module every endpoint of app.json names.
// It re-exports the handlers, which live in ./endpoints/.
export { custom_auth } from "./endpoints/custom_auth.js";
export {
  get_historical,
  get_historical_public,
  get_historical_public_with_receipt,
  get_historical_range,
  get_historical_range_public,
  get_historical_with_receipt,
} from "./endpoints/historical.js";
export { multi_auth } from "./endpoints/multi_auth.js";
export {
  clear_private,
  clear_public,
  count_private,
  count_public,
  delete_private,
  delete_public,
  get_private,
  get_public,
  post_private,
  post_private_admin_only,
  post_private_prefix_cert,
  post_private_raw_text,
  post_public,
} from "./endpoints/records.js";
