// Governance: COSE Sign1 member messages (signing, verification, replay protection).
export {
  checkProposalReplay,
  DEFAULT_RECENT_COSE_PROPOSALS_WINDOW_SIZE,
  GOV_HEADER,
  GOV_MSG_TYPES,
  GOV_MSG_TYPES_WITH_PROPOSAL_ID,
  type GovAuthPolicy,
  GovCoseErrors,
  MAX_CREATED_AT,
  type ProposalReplayCheck,
  type RecentProposal,
  recentProposalKey,
  type SignGovMessageArgs,
  signGovMessage,
  type VerifiedGovMessage,
  type VerifyGovMessageOptions,
  verifyGovMessage,
} from "./cose.js";
